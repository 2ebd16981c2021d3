
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'natlens' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'natlens'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'natlens' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run a location server: STUN Binding reflection, logins, call relay, federation')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a location server and hold the session, answering calls with this end''s facts')
            [CompletionResult]::new('listen', 'listen', [CompletionResultType]::ParameterValue, 'Log in, fingerprint this end''s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other''s stdout, netcat-style')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Log in, fingerprint this end''s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)')
            [CompletionResult]::new('lab', 'lab', [CompletionResultType]::ParameterValue, 'Build a NAT lab of network namespaces on this machine (needs root) and work in it')
            [CompletionResult]::new('nat', 'nat', [CompletionResultType]::ParameterValue, 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command''s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;server' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6')
            [CompletionResult]::new('--alternate', '--alternate', [CompletionResultType]::ParameterName, 'Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports')
            [CompletionResult]::new('--link', '--link', [CompletionResultType]::ParameterName, 'Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT] as for --server of the client commands: a name is resolved once, at start (the line naming the address used is printed unless --json); the port defaults to 3478')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT] as for --server of the client commands: a name is resolved once, at start (the line naming the address used is printed unless --json); the port defaults to 3478')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of this server in federation (defaults to a random one); must differ between linked servers')
            [CompletionResult]::new('--udp-expiry', '--udp-expiry', [CompletionResultType]::ParameterName, 'Forget a UDP session that has sent nothing for this long')
            [CompletionResult]::new('--max-sessions', '--max-sessions', [CompletionResultType]::ParameterName, 'Maximum number of logged-in sessions')
            [CompletionResult]::new('--max-sessions-per-ip', '--max-sessions-per-ip', [CompletionResultType]::ParameterName, 'Maximum number of sessions logged in from one source IP (refused with 486 beyond it)')
            [CompletionResult]::new('--max-pending-calls', '--max-pending-calls', [CompletionResultType]::ParameterName, 'Maximum number of calls waiting for their callee or a linked server (refused with 503 beyond it)')
            [CompletionResult]::new('--answer-rate', '--answer-rate', [CompletionResultType]::ParameterName, 'Answers per second to one source IP over UDP (burst: twice as many); requests beyond it are dropped and counted as `rate-limited`. Keeps a forged source address from turning the server into a flood aimed at someone else. 0 disables the limit (benchmarks)')
            [CompletionResult]::new('--credentials', '--credentials', [CompletionResultType]::ParameterName, 'Require credentials: LOGIN and CALL must carry USERNAME and MESSAGE-INTEGRITY-SHA256 (RFC 8489 long-term credentials with a server nonce, see natlens-protocol(7)), and an ID may only be logged in with its key. FILE holds one `ID KEY` pair per line, separated by spaces; blank lines and lines starting with `#` are ignored; keys have no spaces. Keep it readable by the server''s user only (a warning is printed otherwise). Without this option the server runs open and says so at start')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Maximum number of open TCP connections (clients and federation links)')
            [CompletionResult]::new('--max-message', '--max-message', [CompletionResultType]::ParameterName, 'Largest STUN message accepted, in bytes (TCP frames and UDP datagrams)')
            [CompletionResult]::new('--max-tcp-backlog', '--max-tcp-backlog', [CompletionResultType]::ParameterName, 'Largest amount of unsent data buffered for one TCP connection before it is closed')
            [CompletionResult]::new('--tcp-idle', '--tcp-idle', [CompletionResultType]::ParameterName, 'Close a TCP connection that has not logged in, or has sent half a frame, after this long')
            [CompletionResult]::new('--stats-interval', '--stats-interval', [CompletionResultType]::ParameterName, 'Print a statistics line this often (0 disables; SIGUSR1 prints one on demand)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Log events as NDJSON on stderr instead of human-readable lines')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;login' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error')
            [CompletionResult]::new('--interface', '--interface', [CompletionResultType]::ParameterName, 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)')
            [CompletionResult]::new('--login-transport', '--login-transport', [CompletionResultType]::ParameterName, 'Transport for the session with the server (as on listen and call). The old spelling -t/--transport still works here, with a deprecation warning')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Deprecated spelling of --login-transport (on the other commands --transport is what is probed or punched); still accepted, with a warning')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Deprecated spelling of --login-transport (on the other commands --transport is what is probed or punched); still accepted, with a warning')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Log out and exit after this long (default: hold the session until interrupted)')
            [CompletionResult]::new('--calls', '--calls', [CompletionResultType]::ParameterName, 'Exit after answering this many calls')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;listen' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error')
            [CompletionResult]::new('--interface', '--interface', [CompletionResultType]::ParameterName, 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)')
            [CompletionResult]::new('--login-transport', '--login-transport', [CompletionResultType]::ParameterName, 'Transport for the session with the location server (the punch itself goes over --transport)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)')
            [CompletionResult]::new('--fanout', '--fanout', [CompletionResultType]::ParameterName, 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT''s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --punch-timeout allow). Default: sized from both ends'' facts')
            [CompletionResult]::new('--delta', '--delta', [CompletionResultType]::ParameterName, 'The peer''s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)')
            [CompletionResult]::new('--preset-delta', '--preset-delta', [CompletionResultType]::ParameterName, 'The peer''s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta')
            [CompletionResult]::new('--punch-timeout', '--punch-timeout', [CompletionResultType]::ParameterName, 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow). `natlens call` waits as long for the call''s answer unless --call-timeout says otherwise. The old spelling --timeout still works, with a deprecation warning (on call it sets both)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Deprecated spelling of --punch-timeout (and, on call, of --call-timeout too); still accepted, with a warning')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)')
            [CompletionResult]::new('--syn-ttl', '--syn-ttl', [CompletionResultType]::ParameterName, 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end''s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)')
            [CompletionResult]::new('--send', '--send', [CompletionResultType]::ParameterName, 'Once connected, send this file to the peer (default: stdin, until it ends)')
            [CompletionResult]::new('--pcap', '--pcap', [CompletionResultType]::ParameterName, 'Write every packet natlens sends and receives on its sockets (the session with the server, the fingerprint''s probes, the punch and the data) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes, resets and crafted SYNs included; without, natlens says so in one line on stderr and writes the UDP datagrams it sent and received with synthesized Ethernet/IP/UDP headers, each marked by a packet comment (TCP is not recorded then)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Exchange the facts, print the punch plan (strategy, expected success, each side''s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails')
            [CompletionResult]::new('--no-data', '--no-data', [CompletionResultType]::ParameterName, 'Once connected, send nothing and write nothing to stdout: the report goes to stdout')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;call' {
            [CompletionResult]::new('--call-timeout', '--call-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the callee''s answer, relayed by the server (default: as long as --punch-timeout)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)')
            [CompletionResult]::new('--key-file', '--key-file', [CompletionResultType]::ParameterName, 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error')
            [CompletionResult]::new('--interface', '--interface', [CompletionResultType]::ParameterName, 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)')
            [CompletionResult]::new('--login-transport', '--login-transport', [CompletionResultType]::ParameterName, 'Transport for the session with the location server (the punch itself goes over --transport)')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)')
            [CompletionResult]::new('--fanout', '--fanout', [CompletionResultType]::ParameterName, 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT''s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --punch-timeout allow). Default: sized from both ends'' facts')
            [CompletionResult]::new('--delta', '--delta', [CompletionResultType]::ParameterName, 'The peer''s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)')
            [CompletionResult]::new('--preset-delta', '--preset-delta', [CompletionResultType]::ParameterName, 'The peer''s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta')
            [CompletionResult]::new('--punch-timeout', '--punch-timeout', [CompletionResultType]::ParameterName, 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow). `natlens call` waits as long for the call''s answer unless --call-timeout says otherwise. The old spelling --timeout still works, with a deprecation warning (on call it sets both)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Deprecated spelling of --punch-timeout (and, on call, of --call-timeout too); still accepted, with a warning')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)')
            [CompletionResult]::new('--syn-ttl', '--syn-ttl', [CompletionResultType]::ParameterName, 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end''s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)')
            [CompletionResult]::new('--send', '--send', [CompletionResultType]::ParameterName, 'Once connected, send this file to the peer (default: stdin, until it ends)')
            [CompletionResult]::new('--pcap', '--pcap', [CompletionResultType]::ParameterName, 'Write every packet natlens sends and receives on its sockets (the session with the server, the fingerprint''s probes, the punch and the data) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes, resets and crafted SYNs included; without, natlens says so in one line on stderr and writes the UDP datagrams it sent and received with synthesized Ethernet/IP/UDP headers, each marked by a packet comment (TCP is not recorded then)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Exchange the facts, print the punch plan (strategy, expected success, each side''s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails')
            [CompletionResult]::new('--no-data', '--no-data', [CompletionResultType]::ParameterName, 'Once connected, send nothing and write nothing to stdout: the report goes to stdout')
            [CompletionResult]::new('--no-punch', '--no-punch', [CompletionResultType]::ParameterName, 'Only exchange facts through the server and print them (both ends'' public addresses, transports, port delta, predicted ports): no fingerprint, no punch')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;lab;up' {
            [CompletionResult]::new('--nat-a', '--nat-a', [CompletionResultType]::ParameterName, 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)')
            [CompletionResult]::new('--nat-b', '--nat-b', [CompletionResultType]::ParameterName, 'NAT mode of router B (see --nat-a)')
            [CompletionResult]::new('--noise', '--noise', [CompletionResultType]::ParameterName, 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober''s probes')
            [CompletionResult]::new('--noise-a', '--noise-a', [CompletionResultType]::ParameterName, 'Noise rate behind router A only (overrides --noise)')
            [CompletionResult]::new('--noise-b', '--noise-b', [CompletionResultType]::ParameterName, 'Noise rate behind router B only (overrides --noise)')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'One-way delay added on each router''s WAN link, in each direction (so a LAN host''s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment')
            [CompletionResult]::new('--loss', '--loss', [CompletionResultType]::ParameterName, 'Percentage of IP packets dropped on each router''s WAN link, in each direction')
            [CompletionResult]::new('--cgnat-a', '--cgnat-a', [CompletionResultType]::ParameterName, 'Put a carrier-grade NAT in MODE (see --nat-a) between router A and the internet: a second NAT layer. Router A''s WAN moves onto a carrier segment in RFC 6598 shared space (router-a 100.64.0.2, carrier-a 100.64.0.1) and the carrier takes router A''s public address 203.0.113.1; --delay and --loss act on the carrier''s link to the internet')
            [CompletionResult]::new('--public-host', '--public-host', [CompletionResultType]::ParameterName, 'Add a public host without NAT (`public`, 203.0.113.20)')
            [CompletionResult]::new('--with-server', '--with-server', [CompletionResultType]::ParameterName, 'Also run the lab''s own natlens server in the server host, in RFC 5780 full mode on 203.0.113.10:3478 with 203.0.113.11:3479 as its alternate (as `lab demo` does), so that `natlens lab exec a -- natlens nat --server 203.0.113.10` works at once. It is recorded in the lab''s state (`lab status` shows it, with its log file) and `lab down` stops it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the lab''s description as one JSON object: schema_version (1), result (ok), then the state file''s keys; on a failure, {schema_version, result (failed), error: {kind, message}} instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab;down' {
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Tear down every natlens lab on this machine except those a running process owns (a test or a demo in progress), including leftover namespaces without a state file')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab;status' {
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object: {schema_version (1), result (ok), labs: one object per lab with its description and live counts}; on a failure, {schema_version, result (failed), error: {kind, message}} instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab;exec' {
            [CompletionResult]::new('--lab', '--lab', [CompletionResultType]::ParameterName, 'The lab to run in; needed only when more than one lab is left running by `lab up` (labs a running process owns, such as a demo''s, count only when there is none of those)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab;demo' {
            [CompletionResult]::new('--nat-a', '--nat-a', [CompletionResultType]::ParameterName, 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)')
            [CompletionResult]::new('--nat-b', '--nat-b', [CompletionResultType]::ParameterName, 'NAT mode of router B (see --nat-a)')
            [CompletionResult]::new('--noise', '--noise', [CompletionResultType]::ParameterName, 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober''s probes')
            [CompletionResult]::new('--noise-a', '--noise-a', [CompletionResultType]::ParameterName, 'Noise rate behind router A only (overrides --noise)')
            [CompletionResult]::new('--noise-b', '--noise-b', [CompletionResultType]::ParameterName, 'Noise rate behind router B only (overrides --noise)')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'One-way delay added on each router''s WAN link, in each direction (so a LAN host''s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment')
            [CompletionResult]::new('--loss', '--loss', [CompletionResultType]::ParameterName, 'Percentage of IP packets dropped on each router''s WAN link, in each direction')
            [CompletionResult]::new('--cgnat-a', '--cgnat-a', [CompletionResultType]::ParameterName, 'Put a carrier-grade NAT in MODE (see --nat-a) between router A and the internet: a second NAT layer. Router A''s WAN moves onto a carrier segment in RFC 6598 shared space (router-a 100.64.0.2, carrier-a 100.64.0.1) and the carrier takes router A''s public address 203.0.113.1; --delay and --loss act on the carrier''s link to the internet')
            [CompletionResult]::new('--public-host', '--public-host', [CompletionResultType]::ParameterName, 'Add a public host without NAT (`public`, 203.0.113.20)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;lab;help' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;lab;help;up' {
            break
        }
        'natlens;lab;help;down' {
            break
        }
        'natlens;lab;help;status' {
            break
        }
        'natlens;lab;help;exec' {
            break
        }
        'natlens;lab;help;demo' {
            break
        }
        'natlens;lab;help;help' {
            break
        }
        'natlens;nat' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'The STUN server to probe; natlens sends to no other host. Any STUN server gives the public address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and names it on stderr. A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required.  Give --server up to 8 times to ask several servers: the first is the primary (RFC 5780 tests, hairpinning, the round trip); the same socket also asks every other one, so that two servers at different IPs tell whether the mapping varies by destination even when neither speaks RFC 5780, and the allocation samples go to the servers in turn, so that a NAT counting ports per destination shows. Servers of another address family than the first are skipped, with a warning')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'The STUN server to probe; natlens sends to no other host. Any STUN server gives the public address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and names it on stderr. A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required.  Give --server up to 8 times to ask several servers: the first is the primary (RFC 5780 tests, hairpinning, the round trip); the same socket also asks every other one, so that two servers at different IPs tell whether the mapping varies by destination even when neither speaks RFC 5780, and the allocation samples go to the servers in turn, so that a NAT counting ports per destination shows. Servers of another address family than the first are skipped, with a warning')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Which transports to fingerprint; with both, UDP and TCP are probed at the same time')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Which transports to fingerprint; with both, UDP and TCP are probed at the same time')
            [CompletionResult]::new('--samples', '--samples', [CompletionResultType]::ParameterName, 'Allocation samples per transport, 2 to 32: fresh sockets sent to the server in two back-to-back bursts. More samples outvote noise; each costs a port on a sequential NAT')
            [CompletionResult]::new('--preset-delta', '--preset-delta', [CompletionResultType]::ParameterName, 'D of the preset-delta rule (the next flow gets the first sample''s port + D), reported with whether the samples bore it out. Non-zero, at most 1024 either way')
            [CompletionResult]::new('--server-timeout', '--server-timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server''s first answer on each transport before deciding that no STUN server is there. The default lets TCP''s third SYN through (Linux retransmits a lost SYN after 1 s and again after 3 s). The fingerprint itself then takes as long as its plan needs: a few round trips. An ICMP unreachable or a refused connection ends the wait at once. The old spelling --timeout still works, with a deprecation warning')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Deprecated spelling of --server-timeout; still accepted, with a warning')
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error')
            [CompletionResult]::new('--interface', '--interface', [CompletionResultType]::ParameterName, 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)')
            [CompletionResult]::new('--pcap', '--pcap', [CompletionResultType]::ParameterName, 'Write every packet natlens sends and receives on its sockets (the probes to the server and its answers) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes included; without, natlens says so in one line on stderr and writes the UDP datagrams it sent and received with synthesized Ethernet/IP/UDP headers, each marked by a packet comment (TCP is not recorded then)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the report as one JSON object on stdout instead of a table (keys under JSON OUTPUT in --help and the man page)')
            [CompletionResult]::new('--no-path', '--no-path', [CompletionResultType]::ParameterName, 'Skip the path probe. By default, alongside the fingerprint and within its time, one UDP socket sends the server a Binding request with each TTL (IPv6: hop limit) from 1 to 8, all at once; each router where the TTL runs out answers ICMP time exceeded (read from the socket''s error queue: no privilege needed) and the server answers those that reach it, which lists the hops up to the server. How many NATs sit on the path, and whether one is a carrier-grade NAT, is read from that: the server seeing another address than this host''s own means a NAT at the first gateway; a hop beyond the first answering from RFC 6598 shared space (100.64.0.0/10) is a carrier''s NAT (CGNAT), one from private space another NAT of unknown owner; CGNAT is false only when every hop from the second up to the first one in public space answered, and null (with the reason) when a hop there was silent or none answered. RFC 5737 documentation addresses count as public (the NAT lab is built from them). The hops'' ICMP quotes say nothing about the NATs: an RFC 5508 NAT translates the quoted packet back to this host''s own address. Answers and errors that match none of the probe''s requests are ignored and counted (path.ignored)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;completions' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;man' {
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;help' {
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run a location server: STUN Binding reflection, logins, call relay, federation')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a location server and hold the session, answering calls with this end''s facts')
            [CompletionResult]::new('listen', 'listen', [CompletionResultType]::ParameterValue, 'Log in, fingerprint this end''s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other''s stdout, netcat-style')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Log in, fingerprint this end''s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)')
            [CompletionResult]::new('lab', 'lab', [CompletionResultType]::ParameterValue, 'Build a NAT lab of network namespaces on this machine (needs root) and work in it')
            [CompletionResult]::new('nat', 'nat', [CompletionResultType]::ParameterValue, 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command''s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;help;server' {
            break
        }
        'natlens;help;login' {
            break
        }
        'natlens;help;listen' {
            break
        }
        'natlens;help;call' {
            break
        }
        'natlens;help;lab' {
            [CompletionResult]::new('up', 'up', [CompletionResultType]::ParameterValue, 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses')
            [CompletionResult]::new('down', 'down', [CompletionResultType]::ParameterValue, 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts')
            [CompletionResult]::new('exec', 'exec', [CompletionResultType]::ParameterValue, 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)')
            [CompletionResult]::new('demo', 'demo', [CompletionResultType]::ParameterValue, 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)')
            break
        }
        'natlens;help;lab;up' {
            break
        }
        'natlens;help;lab;down' {
            break
        }
        'natlens;help;lab;status' {
            break
        }
        'natlens;help;lab;exec' {
            break
        }
        'natlens;help;lab;demo' {
            break
        }
        'natlens;help;nat' {
            break
        }
        'natlens;help;completions' {
            break
        }
        'natlens;help;man' {
            break
        }
        'natlens;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
