
use builtin;
use str;

set edit:completion:arg-completer[natlens] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'natlens'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'natlens'= {
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand server 'Run a location server: STUN Binding reflection, logins, call relay, federation'
            cand login 'Log in to a location server and hold the session, answering calls with this end''s facts'
            cand listen 'Log in, fingerprint this end''s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other''s stdout, netcat-style'
            cand call 'Log in, fingerprint this end''s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)'
            cand lab 'Build a NAT lab of network namespaces on this machine (needs root) and work in it'
            cand nat 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out'
            cand completions 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`'
            cand man 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command''s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;server'= {
            cand --listen 'Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6'
            cand --alternate 'Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN, CHANGE-REQUEST and RESPONSE-PORT. The server then also listens on every mix of the two IPs and two ports. RESPONSE-PORT (UDP only; over TCP, and without --alternate, it is refused with 420) sends the answer to the request''s own source IP at the port named, from the address the request arrived on; like every answer it counts against --answer-rate, and it can only reach the requester''s IP (natlens nat --lifetime relies on it). PADDING is echoed over UDP up to the request''s own size, never more. With CAP_NET_RAW (root, or `setcap cap_net_raw+ep`) it also answers CHANGE-REQUEST over TCP, the TCP filtering test of `natlens nat`, by sending one crafted SYN from the changed address to the requester; without it, it says so in one line at start and refuses those. Give --alternate once per IP family for full mode over both: each pairs with the first --listen of its own family (--listen 192.0.2.1:3478 --alternate 192.0.2.2:3479 --listen [2001:db8::1]:3478 --alternate [2001:db8::2]:3479), and OTHER-ADDRESS always names an address of the request''s own family. Two of one family are refused'
            cand --advertise 'An address of this server to name in every LOGIN success (repeatable; the first of each family counts), beside the specific --listen addresses, which are named by themselves: a client logged in over one family fingerprints and punches its other family through the address named in that family. A wildcard --listen (0.0.0.0, [::]) names none, since the server cannot tell which of the host''s addresses clients reach it at: name them here'
            cand --link 'Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT] as for --server of the client commands: a name is resolved once, at start (the line naming the address used is printed unless --json); the port defaults to 3478'
            cand --peer 'Another natlens server to hold a federation link to over TCP (repeatable). Calls to IDs not logged in here are forwarded over the links. `--peer` is the older name. HOST[:PORT] as for --server of the client commands: a name is resolved once, at start (the line naming the address used is printed unless --json); the port defaults to 3478'
            cand --registry 'Share one registry of logged-in IDs with other natlens servers through Redis (or a Redis Cluster, see --registry-cluster). Each login records `ID → home`, home being this server''s --link-address, and a CALL for an ID not logged in here is looked up and forwarded to its home server over a link dialled on demand (the --link protocol), reused while calls come and closed after 30 s idle. A stale entry naming a server that cannot be reached fails the call within a second (500 Home server unreachable) and is deleted (if it still names that server), so the next call is not found at once; a home that was only slow writes its entry again at its next refresh. Entries are rewritten every --registry-refresh in pipelined batches (not once per keep-alive) and live three refresh intervals; a logout or an expiry deletes an entry only while it still names this server, and a keyed ID logging in elsewhere moves it. Key layout: one string key per ID, `natlens:home:<ID>` = `IP:PORT`, with a TTL; every command touches one key (SET, GET and two one-key Lua scripts, run by SHA1 with EVALSHA and loaded again on NOSCRIPT), so it works unchanged on a Redis Cluster without hash tags. If Redis is unreachable the server keeps serving its own sessions and static links, says so (registry_down event, stats), answers calls it cannot place with 503 Registry unavailable, and re-registers every session as soon as Redis is back (it tries every half second). Repeat the option to give several seed nodes of a cluster'
            cand --link-address 'The address other servers dial to link to this one: what this server''s registry entries name. One of its --listen addresses as the others reach it; defaults to the first --listen address unless that is a wildcard (then this option is required with --registry)'
            cand --registry-refresh 'How often each ID''s --registry entry is rewritten; an entry lives three times this long, which bounds how long a server that died stays named as home'
            cand --name 'Name of this server in federation (defaults to a random one); must differ between linked servers'
            cand --udp-expiry 'Forget a UDP session that has sent nothing for this long'
            cand --max-sessions 'Maximum number of logged-in sessions. By default sized to the machine: a quarter of the memory available at start (MemAvailable in /proc/meminfo) at 256 bytes per session, and at least 100,000. A UDP session over IPv4 with an ID of up to 22 bytes costs the server about 110 bytes of memory (measured: 1,000,000 sessions in under 256 MiB of RSS); TCP and IPv6 sessions, and longer IDs, cost more, and a TCP session also holds a connection (see --max-connections)'
            cand --max-sessions-per-ip 'Maximum number of sessions logged in from one source IP (refused with 486 beyond it)'
            cand --max-pending-calls 'Maximum number of calls waiting for their callee or a linked server (refused with 503 beyond it)'
            cand --answer-rate 'Answers per second to one source IP over UDP (burst: twice as many); requests beyond it are dropped and counted as `rate-limited`. Keeps a forged source address from turning the server into a flood aimed at someone else. 0 disables the limit (benchmarks)'
            cand --credentials 'Require credentials: LOGIN and CALL must carry USERNAME and MESSAGE-INTEGRITY-SHA256 (RFC 8489 long-term credentials with a server nonce, see natlens-protocol(7)), and an ID may only be logged in with its key. FILE holds one `ID KEY` pair per line, separated by spaces; blank lines and lines starting with `#` are ignored; keys have no spaces. Keep it readable by the server''s user only (a warning is printed otherwise). Without this option the server runs open and says so at start'
            cand --max-connections 'Maximum number of open TCP connections (clients and federation links)'
            cand --max-message 'Largest STUN message accepted, in bytes (TCP frames and UDP datagrams)'
            cand --max-tcp-backlog 'Largest amount of unsent data buffered for one TCP connection before it is closed'
            cand --tcp-idle 'Close a TCP connection that has not logged in, or has sent half a frame, after this long'
            cand --stats-interval 'Print a statistics line this often (0 disables; SIGUSR1 prints one on demand)'
            cand --registry-cluster 'The --registry URLs are seed nodes of a Redis Cluster'
            cand --json 'Log events as NDJSON on stderr instead of human-readable lines'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;login'= {
            cand -s 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --server 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --id 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces'
            cand --keepalive 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)'
            cand --key-file 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)'
            cand --bind 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error'
            cand --interface 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)'
            cand --login-transport 'Transport for the session with the server (as on listen and call). The old spelling -t/--transport still works here, with a deprecation warning'
            cand -t 'Deprecated spelling of --login-transport (on the other commands --transport is what is probed or punched); still accepted, with a warning'
            cand --transport 'Deprecated spelling of --login-transport (on the other commands --transport is what is probed or punched); still accepted, with a warning'
            cand --duration 'Log out and exit after this long (default: hold the session until interrupted)'
            cand --calls 'Exit after answering this many calls'
            cand --json 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;listen'= {
            cand -s 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --server 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --id 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces'
            cand --keepalive 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)'
            cand --key-file 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)'
            cand --bind 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error'
            cand --interface 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)'
            cand --login-transport 'Transport for the session with the location server (the punch itself goes over --transport)'
            cand -t 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)'
            cand --transport 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)'
            cand --fanout 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT''s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --punch-timeout allow). Default: sized from both ends'' facts'
            cand --delta 'The peer''s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)'
            cand --preset-delta 'The peer''s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta'
            cand --punch-timeout 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow). `natlens call` waits as long for the call''s answer unless --call-timeout says otherwise. The old spelling --timeout still works, with a deprecation warning (on call it sets both)'
            cand --timeout 'Deprecated spelling of --punch-timeout (and, on call, of --call-timeout too); still accepted, with a warning'
            cand --rate 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)'
            cand --syn-ttl 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end''s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)'
            cand --port-mapping 'auto: ask the gateway on the way to the server (PCP, then NAT-PMP, then UPnP IGD) for a short mapping of the punch''s port (over UDP, the punch socket''s; over TCP, the port the punch binds, which a mapped end then only listens on while the peer connects to the mapping), announce it in this end''s facts so the peer aims straight at it (random-port NATs then connect), and delete it when the punch ends, Ctrl-C included. With no gateway on the way (a loopback or on-link server) nothing is asked; a gateway that refuses or does not answer costs one line on stderr (a hint event with --json) and the punch runs as without. off: never ask'
            cand --family 'Address families to punch over: 4, 6, or any (every family both ends have). With any, an end logged in over one family also fingerprints its other family at the server''s address in it (the one the server''s login answer names, see server --advertise) and announces both; the punch (UDP or TCP) then runs over both families at once, IPv6 first and IPv4 50 ms later. The callee keeps the first path confirmed at its end and stops the other family; the caller keeps the path the callee''s data comes on (over TCP, the connection the callee marks kept), so both ends keep the same one. A family either end lacks is reported as not shared, not an error. Give both ends the same --family: each plans from its own choice, so 4 against any leaves the IPv6 half of the other end punching alone'
            cand --send 'Once connected, send this file to the peer (default: stdin, until it ends)'
            cand --pcap 'Write every packet natlens sends and receives on its sockets (the session with the server, the fingerprint''s probes, the punch and the data) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes, resets and crafted SYNs included; without, natlens says so in one line on stderr and writes what it sent and received with synthesized headers, each packet marked by a comment: the UDP datagrams, and each TCP connection (the session''s, the probes'', the punched one) as a handshake, a segment per write or read with continuous sequence numbers, and the FINs or RST natlens closed it with (the connect() tries of the punch that failed are not in the file)'
            cand --json 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
            cand --force 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance'
            cand --dry-run 'Exchange the facts, print the punch plan (strategy, expected success, each side''s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails'
            cand --no-data 'Once connected, send nothing and write nothing to stdout: the report goes to stdout'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;call'= {
            cand --call-timeout 'How long to wait for the callee''s answer, relayed by the server (default: as long as --punch-timeout)'
            cand -s 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --server 'Location server to log in to: a host name or an IP address, with an optional port (default 3478); an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first IPv4 one this host has a route to (else the first IPv6 one) and says which (the `resolved` event). A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required'
            cand --id 'The ID to log in as: 1 to 64 bytes of printable UTF-8 without spaces'
            cand --keepalive 'How often to refresh the session (UDP keeps the NAT mapping open with it). After a server restart the session logs in again by itself: over UDP when a keepalive is answered 437, over TCP by dialling again (backoff from 100 ms up to this interval, for 10 s)'
            cand --key-file 'File holding this ID''s key (the first line that is not blank or a `#` comment), for a server run with --credentials. The environment variable NATLENS_KEY may hold the key instead. A refused key ends the command with exit status 3 (EXIT STATUS)'
            cand --bind 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error'
            cand --interface 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)'
            cand --login-transport 'Transport for the session with the location server (the punch itself goes over --transport)'
            cand -t 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)'
            cand --transport 'Transport to punch over: udp, tcp (simultaneous open, with crafted SYNs when root or CAP_NET_RAW), or both (a UDP punch, then a TCP punch; both ends must say both)'
            cand --fanout 'Far ports this end aims at, 1 to 65535: fan-out flows over a sequential NAT''s predicted ports (at most 256 flows are opened; a larger K aims at 256), or random ports a birthday spray tries (within the packet budget --rate and --punch-timeout allow). Default: sized from both ends'' facts'
            cand --delta 'The peer''s NAT gives each new flow the port D after the previous one, whatever its facts say (counted from its most likely port)'
            cand --preset-delta 'The peer''s NAT steps by D from the port its server saw (the preset-delta rule); wins over --delta'
            cand --punch-timeout 'Give up punching after this long (more than 0, at most 25s: inside the 30s a NAT keeps an unanswered UDP flow). `natlens call` waits as long for the call''s answer unless --call-timeout says otherwise. The old spelling --timeout still works, with a deprecation warning (on call it sets both)'
            cand --timeout 'Deprecated spelling of --punch-timeout (and, on call, of --call-timeout too); still accepted, with a warning'
            cand --rate 'Packets per second this end sends at most, probes and data alike (bursts of 20 ms)'
            cand --syn-ttl 'TTL of the crafted TCP SYNs (--transport tcp): enough hops to cross this end''s own NAT and open its mappings, too few to reach the far NAT (2 behind one home router; raise it behind a carrier-grade NAT)'
            cand --port-mapping 'auto: ask the gateway on the way to the server (PCP, then NAT-PMP, then UPnP IGD) for a short mapping of the punch''s port (over UDP, the punch socket''s; over TCP, the port the punch binds, which a mapped end then only listens on while the peer connects to the mapping), announce it in this end''s facts so the peer aims straight at it (random-port NATs then connect), and delete it when the punch ends, Ctrl-C included. With no gateway on the way (a loopback or on-link server) nothing is asked; a gateway that refuses or does not answer costs one line on stderr (a hint event with --json) and the punch runs as without. off: never ask'
            cand --family 'Address families to punch over: 4, 6, or any (every family both ends have). With any, an end logged in over one family also fingerprints its other family at the server''s address in it (the one the server''s login answer names, see server --advertise) and announces both; the punch (UDP or TCP) then runs over both families at once, IPv6 first and IPv4 50 ms later. The callee keeps the first path confirmed at its end and stops the other family; the caller keeps the path the callee''s data comes on (over TCP, the connection the callee marks kept), so both ends keep the same one. A family either end lacks is reported as not shared, not an error. Give both ends the same --family: each plans from its own choice, so 4 against any leaves the IPv6 half of the other end punching alone'
            cand --send 'Once connected, send this file to the peer (default: stdin, until it ends)'
            cand --pcap 'Write every packet natlens sends and receives on its sockets (the session with the server, the fingerprint''s probes, the punch and the data) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes, resets and crafted SYNs included; without, natlens says so in one line on stderr and writes what it sent and received with synthesized headers, each packet marked by a comment: the UDP datagrams, and each TCP connection (the session''s, the probes'', the punched one) as a handshake, a segment per write or read with continuous sequence numbers, and the FINs or RST natlens closed it with (the connect() tries of the punch that failed are not in the file)'
            cand --json 'Print machine-readable JSON instead of tables and lines (login: NDJSON events on stdout; call --no-punch: one object on stdout; listen and call: see OUTPUT)'
            cand --force 'Punch a pair the planner refuses (random ports against random or per-destination ports): a blind spray within the budget, with little chance'
            cand --dry-run 'Exchange the facts, print the punch plan (strategy, expected success, each side''s sockets, ports and packets) on stdout and exit without punching. The peer, not told, punches alone and fails'
            cand --no-data 'Once connected, send nothing and write nothing to stdout: the report goes to stdout'
            cand --no-punch 'Only exchange facts through the server and print them (both ends'' public addresses, transports, port delta, predicted ports): no fingerprint, no punch'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab'= {
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand up 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses'
            cand down 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns'
            cand status 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
            cand exec 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)'
            cand demo 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;lab;up'= {
            cand --nat-a 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `restricted` (endpoint-independent mapping, address-dependent filtering: any port of a host the LAN endpoint has sent to may answer), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)'
            cand --nat-b 'NAT mode of router B (see --nat-a)'
            cand --noise 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober''s probes'
            cand --noise-a 'Noise rate behind router A only (overrides --noise)'
            cand --noise-b 'Noise rate behind router B only (overrides --noise)'
            cand --delay 'One-way delay added on each router''s WAN link, in each direction (so a LAN host''s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment'
            cand --loss 'Percentage of IP packets dropped on each router''s WAN link, in each direction'
            cand --udp-timeout 'How long both routers keep an idle UDP mapping, in whole seconds (`30s`, `2m`): sets conntrack''s UDP timeouts in the routers (nf_conntrack_udp_timeout and _stream) and the full-cone mode''s UDP map timeout, so that no UDP state outlives it. The ground truth for `natlens nat --lifetime`. Without it the kernel''s defaults stay (30 s for a flow answered once, 120 s or more for a flow with traffic both ways)'
            cand --cgnat-a 'Put a carrier-grade NAT in MODE (see --nat-a) between router A and the internet: a second NAT layer. Router A''s WAN moves onto a carrier segment in RFC 6598 shared space (router-a 100.64.0.2, carrier-a 100.64.0.1) and the carrier takes router A''s public address 203.0.113.1; --delay and --loss act on the carrier''s link to the internet'
            cand --v6-a 'What router A does with IPv6: `off` (side A is IPv4-only: neither the router nor its LAN hosts have IPv6), `open` (routes the LAN prefix, no filtering), `firewall` or `firewall:eif|adf|apdf` (stateful, RFC 6092: outbound opens a pinhole, unsolicited inbound is dropped unless the filtering admits it: endpoint-independent, the RFC''s default and `firewall` alone, address-dependent, or address-and-port-dependent), `nptv6` (RFC 6296 prefix translation both ways, interface IDs kept, no firewall), `nat66`, `nat66:seq:D` or `nat66:random` (masquerade to the router''s WAN address, port-preserving, sequential or random, as the IPv4 modes)'
            cand --v6-b 'What router B does with IPv6 (see --v6-a)'
            cand --port-mapping 'Run miniupnpd (Debian miniupnpd-nftables) in router a serving these port-mapping protocols: `upnp`, `pmp`, `pcp`, comma-separated, or `none`. miniupnpd serves NAT-PMP and PCP together (one switch, one port), so `pmp` and `pcp` each switch on both. It learns its external address by STUN from the lab''s server, so this implies --with-server; it is recorded in the lab''s state, logs to /run/natlens/PREFIX-miniupnpd.log, and `lab down` stops it'
            cand --public-host 'Add a public host without NAT (`public`, 203.0.113.20)'
            cand --with-server 'Also run the lab''s own natlens server in the server host, in RFC 5780 full mode on 203.0.113.10:3478 with 203.0.113.11:3479 as its alternate (as `lab demo` does) and over IPv6 on [N::10]:3478 with [N::11]:3479 as its alternate (N the lab''s /48, which `lab up` prints), so that `natlens lab exec a -- natlens nat --server 203.0.113.10` works at once. It is recorded in the lab''s state (`lab status` shows it, with its log file) and `lab down` stops it'
            cand --json 'Print the lab''s description as one JSON object: schema_version (1), result (ok), then the state file''s keys; on a failure, {schema_version, result (failed), error: {kind, message}} instead'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab;down'= {
            cand --all 'Tear down every natlens lab on this machine except those a running process owns (a test or a demo in progress), including leftover namespaces without a state file'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab;status'= {
            cand --json 'Print one JSON object: {schema_version (1), result (ok), labs: one object per lab with its description and live counts}; on a failure, {schema_version, result (failed), error: {kind, message}} instead'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab;exec'= {
            cand --lab 'The lab to run in; needed only when more than one lab is left running by `lab up` (labs a running process owns, such as a demo''s, count only when there is none of those)'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab;demo'= {
            cand --nat-a 'NAT mode of router A: `cone` (port-preserving, endpoint-independent mapping, address-and-port-dependent filtering), `full-cone` (endpoint-independent mapping and filtering), `restricted` (endpoint-independent mapping, address-dependent filtering: any port of a host the LAN endpoint has sent to may answer), `seq:D` (symmetric: each new flow gets the port D after the previous one, from 40000) or `random` (symmetric with random ports)'
            cand --nat-b 'NAT mode of router B (see --nat-a)'
            cand --noise 'New UDP flows per second opened by the second LAN host behind each router (a2, b2), so NAT ports are consumed between a prober''s probes'
            cand --noise-a 'Noise rate behind router A only (overrides --noise)'
            cand --noise-b 'Noise rate behind router B only (overrides --noise)'
            cand --delay 'One-way delay added on each router''s WAN link, in each direction (so a LAN host''s round trip to the server grows by twice this): `25ms`, `0.1s`, or a bare number of milliseconds. Made with netem when the kernel has it, else by a user-space frame relay on the internet segment'
            cand --loss 'Percentage of IP packets dropped on each router''s WAN link, in each direction'
            cand --udp-timeout 'How long both routers keep an idle UDP mapping, in whole seconds (`30s`, `2m`): sets conntrack''s UDP timeouts in the routers (nf_conntrack_udp_timeout and _stream) and the full-cone mode''s UDP map timeout, so that no UDP state outlives it. The ground truth for `natlens nat --lifetime`. Without it the kernel''s defaults stay (30 s for a flow answered once, 120 s or more for a flow with traffic both ways)'
            cand --cgnat-a 'Put a carrier-grade NAT in MODE (see --nat-a) between router A and the internet: a second NAT layer. Router A''s WAN moves onto a carrier segment in RFC 6598 shared space (router-a 100.64.0.2, carrier-a 100.64.0.1) and the carrier takes router A''s public address 203.0.113.1; --delay and --loss act on the carrier''s link to the internet'
            cand --v6-a 'What router A does with IPv6: `off` (side A is IPv4-only: neither the router nor its LAN hosts have IPv6), `open` (routes the LAN prefix, no filtering), `firewall` or `firewall:eif|adf|apdf` (stateful, RFC 6092: outbound opens a pinhole, unsolicited inbound is dropped unless the filtering admits it: endpoint-independent, the RFC''s default and `firewall` alone, address-dependent, or address-and-port-dependent), `nptv6` (RFC 6296 prefix translation both ways, interface IDs kept, no firewall), `nat66`, `nat66:seq:D` or `nat66:random` (masquerade to the router''s WAN address, port-preserving, sequential or random, as the IPv4 modes)'
            cand --v6-b 'What router B does with IPv6 (see --v6-a)'
            cand --port-mapping 'Run miniupnpd in router a serving these port-mapping protocols (`upnp`, `pmp`, `pcp`, comma-separated, or `none`; see `lab up --port-mapping`). The demo''s `natlens listen` on a then maps its punch port and announces it, `natlens call` on b aims at the mapping, and the demo says whether the punch went through it: random-port NATs on both sides (`--nat-a random --nat-b random`, refused without a mapping) then connect'
            cand --public-host 'Add a public host without NAT (`public`, 203.0.113.20)'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;lab;help'= {
            cand up 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses'
            cand down 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns'
            cand status 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
            cand exec 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)'
            cand demo 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;lab;help;up'= {
        }
        &'natlens;lab;help;down'= {
        }
        &'natlens;lab;help;status'= {
        }
        &'natlens;lab;help;exec'= {
        }
        &'natlens;lab;help;demo'= {
        }
        &'natlens;lab;help;help'= {
        }
        &'natlens;nat'= {
            cand -s 'The STUN server to probe; natlens sends to no other host. Any STUN server gives the public address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first of each family (see --family) and names the chosen one on stderr. A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required.  Give --server up to 8 times to ask several servers: the first is the primary (RFC 5780 tests, hairpinning, the round trip); the same socket also asks every other one, so that two servers at different IPs tell whether the mapping varies by destination even when neither speaks RFC 5780, and the allocation samples go to the servers in turn, so that a NAT counting ports per destination shows. Each IP family has its own primary: the first --server of that family (see --family)'
            cand --server 'The STUN server to probe; natlens sends to no other host. Any STUN server gives the public address and the port allocation; an RFC 5780 server (natlens server --alternate, coturn with two listening IPs) also lets natlens test mapping and filtering. HOST[:PORT]: a host name or an IP address, the port defaulting to 3478; an IPv6 address with a port goes in brackets, [2001:db8::1]:3478. A name is resolved once, at start, with the system resolver (/etc/hosts, DNS; a name under .example or .test, which RFC 6761 reserves, from /etc/hosts only); of several addresses natlens takes the first of each family (see --family) and names the chosen one on stderr. A name that does not resolve is a usage error (exit status 2). Without --server, the NATLENS_SERVER environment variable names the server; one of the two is required.  Give --server up to 8 times to ask several servers: the first is the primary (RFC 5780 tests, hairpinning, the round trip); the same socket also asks every other one, so that two servers at different IPs tell whether the mapping varies by destination even when neither speaks RFC 5780, and the allocation samples go to the servers in turn, so that a NAT counting ports per destination shows. Each IP family has its own primary: the first --server of that family (see --family)'
            cand --family 'Which IP families to fingerprint: 4, 6, or any (every family a --server offers, probed at the same time). Each family is probed against the first --server of that family (a name that resolves to both families serves both); the other servers of the family come after it as for one family. With any, a family without a server, of the other family than --bind, or (for a name) without a route from this host is reported as not probed, with the reason, and is no error; with 4 or 6, a family without a server is a usage error. IPv4 results are the report''s udp and tcp as always, IPv6 ones are under ipv6 (JSON OUTPUT). The port-mapping probe, the path probe and --lifetime go toward the IPv4 server (the IPv6 one when IPv4 is not probed)'
            cand -t 'Which transports to fingerprint; with both, UDP and TCP are probed at the same time'
            cand --transport 'Which transports to fingerprint; with both, UDP and TCP are probed at the same time'
            cand --samples 'Allocation samples per transport, 2 to 32: fresh sockets sent to the server in two back-to-back bursts. More samples outvote noise; each costs a port on a sequential NAT'
            cand --preset-delta 'D of the preset-delta rule (the next flow gets the first sample''s port + D), reported with whether the samples bore it out. Non-zero, at most 1024 either way'
            cand --server-timeout 'How long to wait for the server''s first answer on each transport before deciding that no STUN server is there. The default lets TCP''s third SYN through (Linux retransmits a lost SYN after 1 s and again after 3 s). The fingerprint itself then takes as long as its plan needs: a few round trips. An ICMP unreachable or a refused connection ends the wait at once. The old spelling --timeout still works, with a deprecation warning'
            cand --timeout 'Deprecated spelling of --server-timeout; still accepted, with a warning'
            cand --lifetime 'Also measure how long an idle UDP mapping lives (RFC 5780 4.6), trying idle intervals up to MAX (default 180s; durations as for --server-timeout), and whether outbound and inbound traffic each refresh a mapping (RFC 4787 REQ-6). Needs an RFC 5780 server that honours RESPONSE-PORT (natlens server --alternate, coturn with two IPs). Dozens of sockets get a mapping at once and stay idle for intervals from 1 s, every 0.5 s up to 10 s, then each 6% longer; when one''s interval is up, another socket asks the server to answer to its public port (RESPONSE-PORT), and the answer arrives only if the mapping still lives. The first dead one ends the run: it lasts about the lifetime found plus one step (at most MAX and a few seconds). Two more sockets are kept alive only by outbound (a Binding indication) or only by inbound traffic (an answer sent to them), and eight by outbound traffic sent with IP TTL 1 to 8 (to locate the outermost NAT), and are all checked past the lifetime. The recommended keepalive is 80% of the longest interval a mapping survived. UDP only; keys mapping_lifetime_ms and the like under JSON OUTPUT'
            cand --bind 'Send from this address of this host (as stunclient''s --localaddr): an IP, with an optional port; an IPv6 address with a port goes in brackets, [2001:db8::2]:40000. The port, when given, goes to one socket: `nat`''s mapping socket (the one whose public address is reported, over UDP and TCP alike), the session socket of `login`, `listen` and `call`; every other socket (allocation samples, the punch) takes a fresh port on the same address. An address this host does not have fails (EADDRNOTAVAIL); one of the other IP version than the server is a usage error'
            cand --interface 'Send through this network interface whatever the routing table prefers (SO_BINDTODEVICE on every socket). Linux asks for CAP_NET_RAW: run as root or give the binary the capability (setcap cap_net_raw+ep)'
            cand --pcap 'Write every packet natlens sends and receives on its sockets (the probes to the server and its answers) to FILE, a pcapng file for Wireshark or tshark (created or truncated). With root or CAP_NET_RAW the packets are captured as they are on the wire, TCP handshakes included; without, natlens says so in one line on stderr and writes what it sent and received with synthesized headers, each packet marked by a comment: the UDP datagrams, and each TCP connection as a handshake, a segment per write or read with continuous sequence numbers, and the RST that closes it'
            cand --port-mapping 'The port-mapping probe, run beside the STUN probes (so the run takes no longer): ask the gateway on the way to the server, in parallel, whether it speaks PCP (ANNOUNCE, and a MAP deleted at once), NAT-PMP (external address) and UPnP IGD (SSDP M-SEARCH unicast to its port 1900, then multicast; GetExternalIPAddress), within about 250 ms (400 ms for UPnP), and compare its external address with the public address STUN saw: when they differ, another NAT sits upstream. `probe` (the default) does that; `test` also asks for a 60 s UDP mapping, asks the server to send one packet to the mapped port (servers that cannot yet: proven null), and deletes the mapping, on Ctrl-C too; `off` skips it. Nothing is asked when the server is on this host or on-link (no gateway between)'
            cand --json 'Print the report as one JSON object on stdout instead of a table (keys under JSON OUTPUT in --help and the man page)'
            cand --no-port-mapping 'Same as --port-mapping off'
            cand --no-path 'Skip the path probe. By default, alongside the fingerprint and within its time, one UDP socket sends the server a Binding request with each TTL (IPv6: hop limit) from 1 to 8, all at once; each router where the TTL runs out answers ICMP time exceeded (read from the socket''s error queue: no privilege needed) and the server answers those that reach it, which lists the hops up to the server. How many NATs sit on the path, and whether one is a carrier-grade NAT, is read from that: the server seeing another address than this host''s own means a NAT at the first gateway; a hop beyond the first answering from RFC 6598 shared space (100.64.0.0/10) is a carrier''s NAT (CGNAT), one from private space another NAT of unknown owner; CGNAT is false only when every hop from the second up to the first one in public space answered, and null (with the reason) when a hop there was silent or none answered. RFC 5737 documentation addresses count as public (the NAT lab is built from them). The hops'' ICMP quotes say nothing about the NATs: an RFC 5508 NAT translates the quoted packet back to this host''s own address. Answers and errors that match none of the probe''s requests are ignored and counted (path.ignored)'
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;completions'= {
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;man'= {
            cand -q 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand --quiet 'Print only the result (the report, the JSON, the data received) and errors: no progress bars, no progress lines, no hints. For `server`: log only warnings, statistics and federation links, not every login, call and drop'
            cand -v 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand --verbose 'Print more on stderr: for `nat` and the fingerprints of `listen`, `call` and `lab demo`, one line per probe (socket, local and server address, CHANGE-REQUEST, the public address that came back and the round trip, or "no answer"); for `listen` and `call` also the punch plan in full under its `plan` line. Other commands print what they print without it'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;help'= {
            cand server 'Run a location server: STUN Binding reflection, logins, call relay, federation'
            cand login 'Log in to a location server and hold the session, answering calls with this end''s facts'
            cand listen 'Log in, fingerprint this end''s NAT, wait for a call and punch a direct path to the caller; then what one end sends arrives on the other''s stdout, netcat-style'
            cand call 'Log in, fingerprint this end''s NAT, call another ID through the server and punch a direct path to it (with --no-punch, only print the facts exchanged)'
            cand lab 'Build a NAT lab of network namespaces on this machine (needs root) and work in it'
            cand nat 'Fingerprint the NAT between this host and a STUN server: mapping, filtering, hairpinning, port allocation and the next port it will hand out'
            cand completions 'Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell): the same script completions/ holds. Load it with, for example, `source <(natlens completions bash)`'
            cand man 'Print a man page (roff) on stdout, the same as man/ holds: natlens(1) with no PAGE, else a command''s page (`natlens man nat`, `natlens man lab up`) or `protocol` for natlens-protocol(7). Read it with `natlens man nat | man -l -`'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;help;server'= {
        }
        &'natlens;help;login'= {
        }
        &'natlens;help;listen'= {
        }
        &'natlens;help;call'= {
        }
        &'natlens;help;lab'= {
            cand up 'Build a lab and leave it running (with --with-server, a natlens server in it too); print its prefix, hosts and addresses'
            cand down 'Tear down a lab (the only one, or PREFIX), or every lab no running process owns'
            cand status 'Show labs: namespaces, addresses, NAT modes, conntrack entry counts'
            cand exec 'Run a command inside one host of a lab, with this natlens first on PATH; natlens exits with the command''s own status. Its stdout is the command''s own: natlens adds no final JSON object to it (the one exception to the rule that --json runs end with one)'
            cand demo 'Build a lab, run a natlens server in it and `natlens nat` behind each NAT, print both reports and the ports the NATs really gave the next flows, punch from a to b over UDP (`natlens listen` and `natlens call`, a message each way, both punch reports, port_through against the far router''s conntrack), and tear the lab down. Exits 0 only when the punch connected and both checks matched (6 when it did not connect)'
        }
        &'natlens;help;lab;up'= {
        }
        &'natlens;help;lab;down'= {
        }
        &'natlens;help;lab;status'= {
        }
        &'natlens;help;lab;exec'= {
        }
        &'natlens;help;lab;demo'= {
        }
        &'natlens;help;nat'= {
        }
        &'natlens;help;completions'= {
        }
        &'natlens;help;man'= {
        }
        &'natlens;help;help'= {
        }
    ]
    $completions[$command]
}
