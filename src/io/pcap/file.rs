//! The pcapng file, through the `pcap-file` crate: one interface block per capture interface,
//! one enhanced packet block per packet, each block reaching the file with one `write(2)`.
//!
//! Why one write per block: a process killed mid-run (SIGKILL, a second Ctrl-C) leaves a file
//! that ends on a block boundary, never a torn record; there is no user-space buffer to lose.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

/// Timestamps in nanoseconds (`if_tsresol` 9): what `pcap-file` writes into packet blocks.
const NANOSECOND_RESOLUTION: u8 = 9;

/// A pcapng file being written: every frame is Ethernet.
pub struct PcapFile {
    file: File,
    /// Encodes one block at a time into its buffer, which goes to `file` whole.
    encoder: PcapNgWriter<Vec<u8>>,
    /// Interface block index by the caller's key (an ifindex).
    interfaces: HashMap<u32, u32>,
}

impl PcapFile {
    /// Creates (or truncates) `path` and writes the section header.
    pub fn create(path: &Path) -> io::Result<PcapFile> {
        let file = File::create(path)?;
        let encoder = PcapNgWriter::new(Vec::new()).map_err(io::Error::other)?;
        let mut pcap = PcapFile {
            file,
            encoder,
            interfaces: HashMap::new(),
        };
        pcap.commit()?;
        Ok(pcap)
    }

    /// The index of interface `key` (named `name` in the file), writing its description block
    /// the first time.
    pub fn interface(&mut self, key: u32, name: &str) -> io::Result<u32> {
        if let Some(&id) = self.interfaces.get(&key) {
            return Ok(id);
        }
        let block = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(name.to_owned())),
                InterfaceDescriptionOption::IfTsResol(NANOSECOND_RESOLUTION),
            ],
        };
        self.encoder
            .write_pcapng_block(block)
            .map_err(io::Error::other)?;
        self.commit()?;
        let id = self.interfaces.len() as u32;
        self.interfaces.insert(key, id);
        Ok(id)
    }

    /// Writes one frame seen on `interface` at `since_epoch`; `original_len` is its length on
    /// the wire when `frame` was cut short. `comment` becomes the packet's comment.
    pub fn packet(
        &mut self,
        interface: u32,
        since_epoch: Duration,
        frame: &[u8],
        original_len: usize,
        comment: Option<&str>,
    ) -> io::Result<()> {
        let block = EnhancedPacketBlock {
            interface_id: interface,
            timestamp: since_epoch,
            original_len: original_len.max(frame.len()) as u32,
            data: Cow::Borrowed(frame),
            options: comment
                .map(|text| EnhancedPacketOption::Comment(Cow::Borrowed(text)))
                .into_iter()
                .collect(),
        };
        self.encoder
            .write_pcapng_block(block)
            .map_err(io::Error::other)?;
        self.commit()
    }

    /// Moves the encoded block to the file in one write.
    fn commit(&mut self) -> io::Result<()> {
        let buffer = self.encoder.get_mut();
        let result = self.file.write_all(buffer);
        buffer.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    #[test]
    fn packets_read_back_with_their_interface_time_and_comment() {
        let dir = std::env::temp_dir().join(format!("natlens-pcapfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcapng");
        let mut pcap = PcapFile::create(&path).unwrap();
        let lo = pcap.interface(1, "lo").unwrap();
        let eth = pcap.interface(7, "eth0").unwrap();
        assert_eq!((lo, eth, pcap.interface(1, "lo").unwrap()), (0, 1, 0));
        let at = Duration::new(1_700_000_000, 123_456_789);
        pcap.packet(eth, at, &[1, 2, 3], 3, Some("synthesized"))
            .unwrap();
        drop(pcap);

        let bytes = std::fs::read(&path).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(packet) = block.unwrap() {
                packets.push(packet.into_owned());
            }
        }
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].interface_id, 1);
        assert_eq!(packets[0].timestamp, at);
        assert_eq!(&packets[0].data[..], &[1, 2, 3]);
        assert!(matches!(&packets[0].options[..],
            [EnhancedPacketOption::Comment(text)] if text == "synthesized"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
