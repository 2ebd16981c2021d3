//! NAT-PMP (`wire::natpmp`): any bytes decode to a response or request, or an error, never a
//! panic; a decoded response re-encodes to its very bytes (it has no field natlens drops); a
//! decoded request re-encodes to one that decodes the same (its reserved bytes are dropped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::wire::natpmp::{RequestRepr, ResponseRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = ResponseRepr::parse(data) {
        assert_eq!(response.to_bytes(), data, "a response re-encodes to its bytes");
    }
    if let Ok(request) = RequestRepr::parse(data) {
        assert_eq!(RequestRepr::parse(&request.to_bytes()), Ok(request));
    }
});
