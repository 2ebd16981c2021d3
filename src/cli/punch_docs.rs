//! The long help of `natlens listen` and `natlens call`: their DESCRIPTION and OUTPUT sections.

/// The DESCRIPTION of `natlens listen`.
pub(super) const LISTEN_LONG_ABOUT: &str = "\
Wait for a call and punch a direct path to the caller.

natlens logs in to the location server (--login-transport), fingerprints this end's NAT toward \
it over the punch transport (the same probes as natlens nat), and waits. Every 20 seconds \
without a call it fingerprints again, so the facts it answers with stay fresh. A call is \
answered with this end's NAT facts and brings the caller's; both ends then compute the same \
plan, and this end starts punching at once: its start signal is the moment it answers. The \
caller's start signal is the answer reaching it, one relay later (this end -> server -> caller), \
so this end's first PUNCH requests reach the caller's NAT about when the caller's first request \
opens it, and may be dropped; this end therefore sends its first round again half a relay and one \
relay after answering (the sync rounds; the relay taken as its own round trip to the server, as the \
fingerprint measured it), which the caller answers at once. The punch sends only to the peer's public IP as \
the server saw it.

Once a nonce handshake has confirmed a path both ways, the two ends exchange data over it: what \
this end reads (--send FILE, or stdin until it ends) arrives on the caller's stdout, and what \
the caller sends arrives on this end's stdout. Then natlens logs out and exits; one call per \
run.

With --transport both, the UDP punch comes first (fingerprint over UDP, answer the call, punch), \
then the TCP punch (fingerprint over TCP, answer the caller's second call, punch), one after the \
other so that neither transport's flows eat the ports predicted for the other. Both ends must \
use --transport both. The data (read whole first) goes over UDP when the UDP punch connected, \
else over TCP; the report covers both (JSON OUTPUT).";

/// The DESCRIPTION of `natlens call`.
pub(super) const CALL_LONG_ABOUT: &str = "\
Call another ID and punch a direct path to it.

natlens logs in to the location server (--login-transport), fingerprints this end's NAT toward \
it over the punch transport, and calls NAME with its NAT facts; the callee (natlens listen) \
answers with its own. Both ends compute the same plan from both facts, and each punches from \
the sockets the plan names toward the ports it predicts for the other. The punch sends only to \
the peer's public IP as the server saw it.

Once a nonce handshake has confirmed a path both ways, what this end reads (--send FILE, or \
stdin until it ends) arrives on the callee's stdout and the callee's data on this end's stdout. \
With --no-punch, natlens only exchanges facts and prints both ends' (with --json, one object: \
see OUTPUT).

This end's start signal is the callee's answer reaching it; it starts punching then. With \
--transport both, it punches over UDP first, then fingerprints over TCP and calls again for the \
TCP punch (calling again while the callee still answers with its UDP facts); the data (read \
whole first) goes over UDP when the UDP punch connected, else over TCP.";

/// The output sections of `natlens listen` and `natlens call`.
pub(super) const PUNCH_OUTPUT: &str = "\
OUTPUT
stdout carries the peer's data, byte for byte. Progress goes to stderr: lines for people, or \
with --json one JSON object per line with an \"event\" key and nothing else on stderr: \
resolved first when --server is a name (name, server: the address used, addresses: every \
address it resolved to), then the session's (logged_in {id, server, transport, \
public_address, udp_expiry_ms}, login_refused {code, reason}, server_unreachable {during}, \
connection_lost, server_changed {from, server, during}, relogin {server, public_address, \
udp_expiry_ms}, public_address_changed {old, new}, \
incoming_call {caller, call_id, caller_facts}, calling {callee, call_id}, call_answered \
{callee, call_id, callee_facts}, call_failed {callee, call_id, code, reason}, logged_out), then \
the punch's (fingerprint {transport, public_address, mapping, filtering, pattern, delta, \
foreign_flows_per_second}, waiting {transport}, plan {transport, strategy, reason, \
expected_success}, hint {message}, peer_heard {at_ms, from}, connected {at_ms, peer}, \
punch_failed {at_ms, reason}, data_done {at_ms, reason}; with --transport both also \
stale_answer {transport}, and punch_failed {transport, reason} for a leg that could not run). \
The facts (caller_facts, callee_facts) are {public_address, transports {udp, tcp}, delta, \
predicted_ports}, with profile when the end sent its fingerprint's verdicts, and other_family \
{family, public_address (null: the end has no address in that family), delta, predicted_ports, \
profile} when it said anything about its family other than the session's.

The report comes last: a table, or with --json one JSON object on one line (the keys below, no \
\"event\"), on stderr, or on stdout with --no-data. With --json the report is the last line \
of the stream it is written to, and every run ends with exactly one such final object: when \
the run ends before a punch (server unreachable, callee unknown, credentials refused, an \
interrupt), a failure object {schema_version, result (failed, or interrupted on SIGINT or \
SIGTERM), error: {kind, message}} goes where the report would have gone, and no plain \
natlens: line is written to stderr. error.kind is one of those listed under EXIT STATUS. With \
--dry-run, stdout carries the plan instead (its describe lines, or with --json one object with \
dry_run true and result planned), one per family both ends share (IPv6 first); with \
--transport both, the UDP plans, then the TCP plans (one object per line).

JSON OUTPUT
schema_version changes when a field changes meaning or disappears; adding a field does not. \
What was not measured is null.

  schema_version  2 (see Changes in schema 2 below).
  result  connected or failed.
  reason  Why the punch failed or was refused; null when connected.
  transport  udp.
  strategy  direct, fanout, birthday or refused.
  role  caller or callee: this end.
  elapsed_ms  From this end's start signal to the confirmed path (or the failure). The start \
signal: for the callee (listen), the moment it answers the call; for the caller, the moment \
that answer reaches it.
  expected_success  The plan's odds, 0 to 1.
  directions  Caller to callee, then callee to caller; each {from, to, predicted_ports, \
port_through, offset, packets_sent, first_through_ms, via_port_mapping}: the far ports the \
sender aimed at, the one a packet got through to and its index, the probes sent by then, and \
when it got through, in ms from this end's start signal (for this end's own direction, when its \
first echo came back; for the peer's, when its first packet arrived); via_port_mapping is true \
when the sender aimed at the port the receiver's gateway mapped for the punch (NAT-PMP, PCP or \
UPnP IGD, announced in its facts).
  peer_id  The other end's ID.
  call_id  The call's ID, 16 hex digits.
  path  {local, peer}: this end's socket and the peer's public address on the confirmed path; \
null when not connected.
  data  null when not connected; else {result (complete or failed), reason, bytes_sent, \
bytes_received, retransmissions, elapsed_ms}.
  families  Each address family's part, in the order tried (ipv6, then ipv4; one with \
--family 4 or 6): {family (ipv4 or ipv6), plan (its strategy; null when not shared), outcome \
(connected, failed, refused, stopped: the other family connected first or a TCP punch tried \
only the first, not-shared: an end has no usable address there, an older peer said nothing \
about it, or its address there is link-local or IPv4-mapped), reason (null when connected), \
port_through (the far port this end's packets got through to in that family), connected_ms \
(from the start signal, IPv4's 50 ms head start behind IPv6 included)}. The keys above \
(strategy, directions, path...) are the winning family's, else the first family punched.
  winner  ipv4 or ipv6: the family whose path was kept; null when none connected.
  error  Only when the run did not succeed: {kind, message}; kind punch_failed when no path \
was found (exit status 6), failed when the data exchange failed after the punch (exit status 1).

With --transport both the object is (same schema_version, the keys above inside attempts):
  schema_version  2.
  result  connected when either transport connected, else failed.
  reason  Each attempt's reason (\"udp: ...; tcp: ...\") when neither connected; else null.
  transport  both.
  role, peer_id  As above.
  data_transport  udp or tcp: the attempt whose path carried the data (UDP when it connected); \
null when neither connected or with --no-data.
  attempts  The UDP attempt, then the TCP one: each the object above (with transport udp or \
tcp, its own data, null on the attempt that did not carry it), or, for an attempt that never \
got to punch (its fingerprint or its call failed), {schema_version, result (failed), reason, \
transport}.
  error  As above, for the run as a whole.

With call --no-punch --json, stdout carries one object, keys sorted: call_id, callee, \
callee_facts (the facts above), caller, own_public_address (where the server saw this end), \
result (ok) and schema_version (2); or the failure object.

CHANGES IN SCHEMA 2
  observed  Renamed public_address: in the logged_in and relogin events and in caller_facts \
and callee_facts; own_observed (call --no-punch) is own_public_address.
  observed_changed  The event is now public_address_changed.
  udp_expiry_secs  Now udp_expiry_ms, in milliseconds.
  error, result  Added: error on a report that did not succeed, the failure object when no \
report was made, result on call --no-punch's object and on a --dry-run plan.";
