
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
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand server 'Run a location server: STUN Binding reflection, logins, call relay, federation'
            cand login 'Log in to a location server and hold the session, answering calls with this end''s facts'
            cand call 'Log in, call another logged-in ID through the server and print the facts exchanged'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;server'= {
            cand --listen 'Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6'
            cand --alternate 'Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports'
            cand --peer 'Another natlens server to federate with over TCP (repeatable). Calls to IDs not logged in here are forwarded to peers'
            cand --name 'Name of this server in federation (defaults to a random one); must differ between peers'
            cand --udp-expiry 'Forget a UDP session that has sent nothing for this long'
            cand --max-sessions 'Maximum number of logged-in sessions'
            cand --max-connections 'Maximum number of open TCP connections (clients and peers)'
            cand --max-message 'Largest STUN message accepted, in bytes (TCP frames and UDP datagrams)'
            cand --max-tcp-backlog 'Largest amount of unsent data buffered for one TCP connection before it is closed'
            cand --tcp-idle 'Close a TCP connection that has not logged in, or has sent half a frame, after this long'
            cand --stats-interval 'Print a statistics line this often (0 disables; SIGUSR1 prints one on demand)'
            cand --json 'Log events as NDJSON on stderr instead of human-readable lines'
            cand -q 'Log only warnings and statistics, not every login, call and drop'
            cand --quiet 'Log only warnings and statistics, not every login, call and drop'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;login'= {
            cand -s 'Location server to log in to'
            cand --server 'Location server to log in to'
            cand --id 'The ID to log in as'
            cand -t 'Transport for the session with the server'
            cand --transport 'Transport for the session with the server'
            cand --keepalive 'How often to refresh the session (UDP keeps the NAT mapping open with it)'
            cand --duration 'Log out and exit after this long (default: hold the session until interrupted)'
            cand --calls 'Exit after answering this many calls'
            cand --json 'Print machine-readable JSON on stdout (NDJSON events for long-running commands)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;call'= {
            cand -s 'Location server to log in to'
            cand --server 'Location server to log in to'
            cand --id 'The ID to log in as'
            cand -t 'Transport for the session with the server'
            cand --transport 'Transport for the session with the server'
            cand --keepalive 'How often to refresh the session (UDP keeps the NAT mapping open with it)'
            cand --timeout 'Give up on the call after this long'
            cand --json 'Print machine-readable JSON on stdout (NDJSON events for long-running commands)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'natlens;help'= {
            cand server 'Run a location server: STUN Binding reflection, logins, call relay, federation'
            cand login 'Log in to a location server and hold the session, answering calls with this end''s facts'
            cand call 'Log in, call another logged-in ID through the server and print the facts exchanged'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'natlens;help;server'= {
        }
        &'natlens;help;login'= {
        }
        &'natlens;help;call'= {
        }
        &'natlens;help;help'= {
        }
    ]
    $completions[$command]
}
