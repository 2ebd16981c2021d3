//! PCP (`wire::pcp`): any bytes decode to a response or request, or an error, never a panic;
//! whatever decodes re-encodes to a message that decodes to the same value (options and
//! reserved bytes are dropped on the way, so the bytes themselves may differ).
#![no_main]

use libfuzzer_sys::fuzz_target;
use natlens::wire::pcp::{RequestRepr, ResponseRepr};

fuzz_target!(|data: &[u8]| {
    if let Ok(response) = ResponseRepr::parse(data) {
        assert_eq!(ResponseRepr::parse(&response.to_bytes()), Ok(response));
    }
    if let Ok(request) = RequestRepr::parse(data) {
        assert_eq!(RequestRepr::parse(&request.to_bytes()), Ok(request));
    }
});
