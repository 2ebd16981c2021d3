//! The OUTPUT sections of `natlens login` and `natlens server`: their NDJSON events and the
//! final object each `--json` run ends with.

/// The OUTPUT section of `natlens login`.
pub(super) const LOGIN_OUTPUT: &str = "\
OUTPUT
Without --json, one line per event on stderr, for people. With --json, stdout carries one JSON \
object per line and nothing else: the events, each with an \"event\" key, then one final \
object without one.

The events: resolved {name, server, addresses} first when --server is a name; logged_in {id, \
server, transport, public_address, udp_expiry_ms}: the server accepted the login and sees this \
end at public_address, a silent UDP session living udp_expiry_ms on it; login_refused {code, \
reason}; server_unreachable {during: login, keepalive or connection}; connection_lost (the TCP \
connection closed, dialling again); server_changed {from, server, during}: the server in \
use stopped answering and the session moves to the next --server; relogin {server, \
public_address, udp_expiry_ms} (the server had forgotten the session, or the session moved to \
server); public_address_changed {old, new}; incoming_call {caller, call_id, \
caller_facts}: a call answered with this end's facts (caller_facts: {public_address, \
transports {udp, tcp}, delta, predicted_ports}, with profile when the caller sent its \
fingerprint's verdicts); logged_out.

The final object: {schema_version, result (ok), calls_answered, server} when the session \
ended by --duration or --calls; else the failure object {schema_version, result (failed, or \
interrupted on SIGINT or SIGTERM, after logging out), error: {kind, message}}, kind as under \
EXIT STATUS.

JSON OUTPUT
  schema_version  2 (see Changes in schema 2).
  result  ok, failed or interrupted.
  calls_answered  Calls answered during the session (result ok only).
  server  The server the session was on at the end: after a failover, the one it moved to \
(result ok only).
  error  {kind, message} when result is not ok.

CHANGES IN SCHEMA 2
  observed  Renamed public_address (logged_in, relogin, caller_facts).
  observed_changed  The event is now public_address_changed.
  udp_expiry_secs  Now udp_expiry_ms, in milliseconds.
  final object  Added: the stream ends with the summary or the failure object; SIGINT ends with \
status 130 (was 0).";

/// The OUTPUT section of `natlens server`.
pub(super) const SERVER_OUTPUT: &str = "\
OUTPUT
The log goes to stderr: one line per event with an RFC 3339 UTC timestamp, or with --json one \
JSON object per line and nothing else, each with \"event\" and \"ts\" keys. stdout carries \
nothing until the server ends; with --json it then carries one final object: \
{schema_version, result (ok)} after a SIGINT or SIGTERM, or the failure object \
{schema_version, result (failed), error: {kind, message}} when the server could not start \
(an address in use, a malformed credentials file), kind as under EXIT STATUS.

The events:
  warning  {message}: the server runs open, a credentials file others can read, capabilities \
it could not drop.
  listening  {transport, address, full_mode}: one per bound socket.
  login  {id, transport, public_address}: a session logged in, seen at public_address.
  login_refused  {id, transport, from, code, reason}.
  logout  {id, transport, reason}: reason logout, closed (its TCP connection ended) or replaced \
(another ID on the same route).
  expire  {id, public_address, silent_ms}: a UDP session silent past --udp-expiry.
  call  {call_id, caller, callee, from}: from is local or the name of the linked server that \
forwarded it.
  relay  {call_id, caller, callee, outcome, code}: the call's outcome sent back (answered, \
not-found, timeout or error).
  drop  {reason, transport, from}: a message that got no answer, or a closed connection; at most \
20 a second, then {suppressed} counts the lines left out.
  peer_up, peer_down  {name, conn}: a federation link came up or went down (links dialled on \
demand by --registry too).
  registry_up  {home, sessions}: the --registry Redis is reachable (at start or again); sessions \
IDs are being re-registered as living at home, this server's --link-address.
  registry_down  {reason}: the --registry Redis went away; local calls and static links go on.
  stats  {sessions_udp, sessions_tcp, connections, peers, requests_per_sec, counters {received, \
bindings, errors, logins, logouts, expired, calls, relayed, drops}, registry}: every \
--stats-interval, on SIGUSR1 and at exit; registry (connecting, up or down) only with --registry.

CHANGES IN SCHEMA 2
  observed  Renamed public_address in the login and expire events.
  final object  Added: with --json, stdout ends with the final object.";
