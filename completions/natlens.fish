# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_natlens_global_optspecs
    string join \n q/quiet v/verbose h/help V/version
end

function __fish_natlens_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_natlens_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_natlens_using_subcommand
    set -l cmd (__fish_natlens_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c natlens -n "__fish_natlens_needs_command" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_needs_command" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_needs_command" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_needs_command" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "server" -d 'Run a location server: STUN Binding reflection, logins, call relay, federation'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "login" -d 'Log in to a location server and hold the session, answering calls with this end\'s facts'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "listen" -d 'Log in, fingerprint this end\'s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other\'s stdout, netcat-style'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "call" -d 'Log in, fingerprint this end\'s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "lab" -d 'Build a NAT lab of network namespaces on this machine (needs root) and work in it'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "nat" -d 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "completions" -d 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "man" -d 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command\'s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`'
complete -c natlens -n "__fish_natlens_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c natlens -n "__fish_natlens_using_subcommand server" -l listen -d 'Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l alternate -d 'Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l link -l peer -d 'Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT] as for --server of the client commands: a name is resolved once, at start (the line naming the address used is printed unless --json); the port defaults to 3478' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l name -d 'Name of this server in federation (defaults to a random one); must differ between linked servers' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l udp-expiry -d 'Forget a UDP session that has sent nothing for this long' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-sessions -d 'Maximum number of logged-in sessions' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-sessions-per-ip -d 'Maximum number of sessions logged in from one source IP (refused with 486 beyond it)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-pending-calls -d 'Maximum number of calls waiting for their callee or a linked server (refused with 503 beyond it)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l answer-rate -d 'Answers per second to one source IP over UDP (burst: twice as many); requests beyond it are dropped and counted as `rate-limited`. Keeps a forged source address from turning the server into a flood aimed at someone else. 0 disables the limit (benchmarks)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l credentials -d 'Require credentials: LOGIN and CALL must carry USERNAME and MESSAGE-INTEGRITY-SHA256 (RFC 8489 long-term credentials with a server nonce, see natlens-protocol(7)), and an ID may only be logged in with its key. FILE holds one `ID KEY` pair per line, separated by spaces; blank lines and lines starting with `#` are ignored; keys have no spaces. Keep it readable by the server\'s user only (a warning is printed otherwise). Without this option the server runs open and says so at start' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-connections -d 'Maximum number of open TCP connections (clients and federation links)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-message -d 'Largest STUN message accepted, in bytes (TCP frames and UDP datagrams)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l max-tcp-backlog -d 'Largest amount of unsent data buffered for one TCP connection before it is closed' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l tcp-idle -d 'Close a TCP connection that has not logged in, or has sent half a frame, after this long' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l stats-interval -d 'Print a statistics line this often (0 disables; SIGUSR1 prints one on demand)' -r
complete -c natlens -n "__fish_natlens_using_subcommand server" -l json -d 'Log events as NDJSON on stderr instead of human-readable lines'
complete -c natlens -n "__fish_natlens_using_subcommand server" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand server" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand server" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand server" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand login" -s s -l server -d 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required' -r
complete -c natlens -n "__fish_natlens_using_subcommand login" -l id -d 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces' -r
complete -c natlens -n "__fish_natlens_using_subcommand login" -l keepalive -d 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)' -r
complete -c natlens -n "__fish_natlens_using_subcommand login" -l key-file -d 'File holding this ID\'s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand login" -s t -l transport -d 'Transport for the session with the server' -r -f -a "udp\t'Datagrams; the session is kept alive (and the NAT mapping open) by keep-alives'
tcp\t'One long-lived connection'"
complete -c natlens -n "__fish_natlens_using_subcommand login" -l duration -d 'Log out and exit after this long (default: hold the session until interrupted)' -r
complete -c natlens -n "__fish_natlens_using_subcommand login" -l calls -d 'Exit after answering this many calls' -r
complete -c natlens -n "__fish_natlens_using_subcommand login" -l json -d 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
complete -c natlens -n "__fish_natlens_using_subcommand login" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand login" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand login" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c natlens -n "__fish_natlens_using_subcommand login" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s s -l server -d 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l id -d 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l keepalive -d 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l key-file -d 'File holding this ID\'s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l login-transport -d 'Transport for the session with the location server (the punch itself goes over --transport)' -r -f -a "udp\t'Datagrams; the session is kept alive (and the NAT mapping open) by keep-alives'
tcp\t'One long-lived connection'"
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s t -l transport -d 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)' -r -f -a "udp\t'UDP: fan-out from the planned sockets, nonce handshake, then the data exchange'
tcp\t'TCP: low-TTL crafted SYN fan-out, simultaneous open with takeover, then the data exchange over the stream'
both\t'UDP, then TCP, each with its own fingerprint and call on the same session: both reported, the data over UDP when it connected (else over TCP), exit 0 when either did'"
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l fanout -d 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT\'s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --timeout allow). Default: sized from both ends\' facts' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l delta -d 'The peer\'s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l preset-delta -d 'The peer\'s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l timeout -d 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow); `natlens call` also waits this long for the call\'s answer' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l rate -d 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l syn-ttl -d 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end\'s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)' -r
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l send -d 'Once connected, send this file to the peer (default: stdin, until it ends)' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l json -d 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l force -d 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l dry-run -d 'Exchange the facts, print the punch plan (strategy, expected success, each side\'s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -l no-data -d 'Once connected, send nothing and write nothing to stdout: the report goes to stdout'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c natlens -n "__fish_natlens_using_subcommand listen" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand call" -s s -l server -d 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l id -d 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l keepalive -d 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l key-file -d 'File holding this ID\'s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand call" -l login-transport -d 'Transport for the session with the location server (the punch itself goes over --transport)' -r -f -a "udp\t'Datagrams; the session is kept alive (and the NAT mapping open) by keep-alives'
tcp\t'One long-lived connection'"
complete -c natlens -n "__fish_natlens_using_subcommand call" -s t -l transport -d 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)' -r -f -a "udp\t'UDP: fan-out from the planned sockets, nonce handshake, then the data exchange'
tcp\t'TCP: low-TTL crafted SYN fan-out, simultaneous open with takeover, then the data exchange over the stream'
both\t'UDP, then TCP, each with its own fingerprint and call on the same session: both reported, the data over UDP when it connected (else over TCP), exit 0 when either did'"
complete -c natlens -n "__fish_natlens_using_subcommand call" -l fanout -d 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT\'s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --timeout allow). Default: sized from both ends\' facts' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l delta -d 'The peer\'s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l preset-delta -d 'The peer\'s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l timeout -d 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow); `natlens call` also waits this long for the call\'s answer' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l rate -d 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l syn-ttl -d 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end\'s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)' -r
complete -c natlens -n "__fish_natlens_using_subcommand call" -l send -d 'Once connected, send this file to the peer (default: stdin, until it ends)' -r -F
complete -c natlens -n "__fish_natlens_using_subcommand call" -l json -d 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
complete -c natlens -n "__fish_natlens_using_subcommand call" -l force -d 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance'
complete -c natlens -n "__fish_natlens_using_subcommand call" -l dry-run -d 'Exchange the facts, print the punch plan (strategy, expected success, each side\'s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails'
complete -c natlens -n "__fish_natlens_using_subcommand call" -l no-data -d 'Once connected, send nothing and write nothing to stdout: the report goes to stdout'
complete -c natlens -n "__fish_natlens_using_subcommand call" -l no-punch -d 'Only exchange facts through the server and print them (both ends\' public addresses, transports, port delta, predicted ports): no fingerprint, no punch'
complete -c natlens -n "__fish_natlens_using_subcommand call" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand call" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand call" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c natlens -n "__fish_natlens_using_subcommand call" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "up" -d 'Build a lab and leave it running; print its prefix, hosts and addresses'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "down" -d 'Tear down one lab, or every lab no running process owns'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "status" -d 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "exec" -d 'Run a command inside one host of a lab; natlens exits with the command\'s own status'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "demo" -d 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router\'s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and not __fish_seen_subcommand_from up down status exec demo help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l nat-a -d 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)' -r -f -a "cone\t''
full-cone\t''
seq:1\t''
seq:2\t''
random\t''"
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l nat-b -d 'NAT mode of router B (see --nat-a)' -r -f -a "cone\t''
full-cone\t''
seq:1\t''
seq:2\t''
random\t''"
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l noise -d 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober\'s probes' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l noise-a -d 'Noise rate behind router A only (overrides --noise)' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l noise-b -d 'Noise rate behind router B only (overrides --noise)' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l delay -d 'One-way delay added on each router\'s WAN link, in each direction (so a LAN host\'s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l loss -d 'Percentage of IP packets dropped on each router\'s WAN link, in each direction' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l public-host -d 'Add a public host without NAT (`public`, 203.0.113.20)'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -l json -d 'Print the lab\'s description (the state file\'s contents) as JSON'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from up" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down" -l all -d 'Tear down every natlens lab on this machine except those a running process owns (a test or a demo in progress), including leftover namespaces without a state file'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from status" -l json -d 'Print JSON: one object per lab with its description and live counts'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -l lab -d 'The lab to run in (needed only when more than one lab exists)' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l nat-a -d 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)' -r -f -a "cone\t''
full-cone\t''
seq:1\t''
seq:2\t''
random\t''"
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l nat-b -d 'NAT mode of router B (see --nat-a)' -r -f -a "cone\t''
full-cone\t''
seq:1\t''
seq:2\t''
random\t''"
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l noise -d 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober\'s probes' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l noise-a -d 'Noise rate behind router A only (overrides --noise)' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l noise-b -d 'Noise rate behind router B only (overrides --noise)' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l delay -d 'One-way delay added on each router\'s WAN link, in each direction (so a LAN host\'s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l loss -d 'Percentage of IP packets dropped on each router\'s WAN link, in each direction' -r
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -l public-host -d 'Add a public host without NAT (`public`, 203.0.113.20)'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from demo" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "up" -d 'Build a lab and leave it running; print its prefix, hosts and addresses'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "down" -d 'Tear down one lab, or every lab no running process owns'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "exec" -d 'Run a command inside one host of a lab; natlens exits with the command\'s own status'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "demo" -d 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router\'s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s s -l server -d 'The STUN server to probe; natlens sends to no other host. Any STUN server gives the public address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and names it on stderr. A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required' -r
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s t -l transport -d 'Which transports to fingerprint; with both, UDP and TCP are probed at the same time' -r -f -a "udp\t'UDP only'
tcp\t'TCP only'
both\t'UDP and TCP at the same time'"
complete -c natlens -n "__fish_natlens_using_subcommand nat" -l samples -d 'Allocation samples per transport, 2 to 32: fresh sockets sent to the server in two back-to-back bursts. More samples outvote noise; each costs a port on a sequential NAT' -r
complete -c natlens -n "__fish_natlens_using_subcommand nat" -l preset-delta -d 'D of the preset-delta rule (the next flow gets the first sample\'s port + D), reported with whether the samples bore it out. Non-zero, at most 1024 either way' -r
complete -c natlens -n "__fish_natlens_using_subcommand nat" -l timeout -d 'How long to wait for the server\'s first answer on each transport before deciding that no STUN server is there. The default lets TCP\'s third SYN through (Linux retransmits a lost SYN after 1 s and again after 3 s). The fingerprint itself then takes as long as its plan needs: a few round trips' -r
complete -c natlens -n "__fish_natlens_using_subcommand nat" -l json -d 'Print the report as one JSON object on stdout instead of a table (keys under JSON OUTPUT in --help and the man page)'
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c natlens -n "__fish_natlens_using_subcommand nat" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand completions" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand completions" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand completions" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand completions" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand man" -s q -l quiet -d 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
complete -c natlens -n "__fish_natlens_using_subcommand man" -s v -l verbose -d 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
complete -c natlens -n "__fish_natlens_using_subcommand man" -s h -l help -d 'Print help'
complete -c natlens -n "__fish_natlens_using_subcommand man" -s V -l version -d 'Print version'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "server" -d 'Run a location server: STUN Binding reflection, logins, call relay, federation'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "login" -d 'Log in to a location server and hold the session, answering calls with this end\'s facts'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "listen" -d 'Log in, fingerprint this end\'s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other\'s stdout, netcat-style'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "call" -d 'Log in, fingerprint this end\'s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "lab" -d 'Build a NAT lab of network namespaces on this machine (needs root) and work in it'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "nat" -d 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "completions" -d 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "man" -d 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command\'s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`'
complete -c natlens -n "__fish_natlens_using_subcommand help; and not __fish_seen_subcommand_from server login listen call lab nat completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c natlens -n "__fish_natlens_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "up" -d 'Build a lab and leave it running; print its prefix, hosts and addresses'
complete -c natlens -n "__fish_natlens_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "down" -d 'Tear down one lab, or every lab no running process owns'
complete -c natlens -n "__fish_natlens_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "status" -d 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
complete -c natlens -n "__fish_natlens_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "exec" -d 'Run a command inside one host of a lab; natlens exits with the command\'s own status'
complete -c natlens -n "__fish_natlens_using_subcommand help; and __fish_seen_subcommand_from lab" -f -a "demo" -d 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router\'s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'

# natlens: the prefixes of the labs that exist now (/run/natlens/<prefix>.json), and the host
# names `lab exec` takes (clap's fish script offers no values for positional arguments).
function __fish_natlens_lab_prefixes
    for state in /run/natlens/*.json
        basename $state .json
    end
end
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down status" -f -a "(__fish_natlens_lab_prefixes)" -d 'lab'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -l lab -x -a "(__fish_natlens_lab_prefixes)" -d 'lab'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -f -a "internet server public router-a a a2 router-b b b2" -d 'lab host'
