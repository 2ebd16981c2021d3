//! The fields of a CALL request the relay routes on, read from a client's CALL or from one a
//! linked server forwarded.

use crate::wire::natlens::{self, error, NatFacts};
use crate::wire::stun::Message;

/// The fields of a CALL request the server routes on.
#[derive(Debug)]
pub(super) struct CallRequest {
    pub caller: String,
    pub callee: String,
    pub call_id: u64,
    /// The servers the call has passed through, oldest first.
    pub via: Vec<String>,
    pub facts: NatFacts,
}

/// The fields every CALL carries; `caller` comes from the session (or the forwarding link).
pub(super) fn parse_call_fields(
    message: &Message<'_>,
    caller: String,
) -> Result<CallRequest, (u16, &'static str)> {
    let Some(Ok(callee)) = natlens::read_name(message, natlens::PEER_ID) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-PEER-ID"));
    };
    let Some(Ok(call_id)) = natlens::read_call_id(message) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-CALL-ID"));
    };
    let facts =
        NatFacts::decode(message).map_err(|_| (error::BAD_REQUEST, "Malformed NAT facts"))?;
    Ok(CallRequest {
        caller,
        callee: callee.to_owned(),
        call_id,
        via: Vec::new(),
        facts,
    })
}

/// A call forwarded over a federation link: the caller's ID, its observed address and the path
/// so far come in the message, vouched for by the linked server.
pub(super) fn parse_forwarded_call(
    message: &Message<'_>,
) -> Result<CallRequest, (u16, &'static str)> {
    let Some(Ok(caller)) = natlens::read_name(message, natlens::ID) else {
        return Err((error::BAD_REQUEST, "Missing or invalid NL-ID"));
    };
    let mut call = parse_call_fields(message, caller.to_owned())?;
    for attribute in message.attributes().filter(|a| a.kind == natlens::VIA) {
        let name = crate::wire::attr::decode_text(attribute.value, natlens::MAX_NAME_LEN)
            .and_then(natlens::validate_name)
            .map_err(|_| (error::BAD_REQUEST, "Invalid NL-VIA"))?;
        if call.via.len() >= natlens::MAX_VIA {
            break;
        }
        call.via.push(name.to_owned());
    }
    Ok(call)
}
