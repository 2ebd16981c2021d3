
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
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run a location server: STUN Binding reflection, logins, call relay, federation')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a location server and hold the session, answering calls with this end''s facts')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Log in, call another logged-in ID through the server and print the facts exchanged')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;server' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to serve STUN and natlens on, over both UDP and TCP. Repeatable; IPv4 or IPv6')
            [CompletionResult]::new('--alternate', '--alternate', [CompletionResultType]::ParameterName, 'Second IP and port for RFC 5780 "full" mode: enables OTHER-ADDRESS, RESPONSE-ORIGIN and CHANGE-REQUEST. The server then also listens on every mix of the two IPs and two ports')
            [CompletionResult]::new('--peer', '--peer', [CompletionResultType]::ParameterName, 'Another natlens server to federate with over TCP (repeatable). Calls to IDs not logged in here are forwarded to peers')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name of this server in federation (defaults to a random one); must differ between peers')
            [CompletionResult]::new('--udp-expiry', '--udp-expiry', [CompletionResultType]::ParameterName, 'Forget a UDP session that has sent nothing for this long')
            [CompletionResult]::new('--max-sessions', '--max-sessions', [CompletionResultType]::ParameterName, 'Maximum number of logged-in sessions')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Maximum number of open TCP connections (clients and peers)')
            [CompletionResult]::new('--max-message', '--max-message', [CompletionResultType]::ParameterName, 'Largest STUN message accepted, in bytes (TCP frames and UDP datagrams)')
            [CompletionResult]::new('--max-tcp-backlog', '--max-tcp-backlog', [CompletionResultType]::ParameterName, 'Largest amount of unsent data buffered for one TCP connection before it is closed')
            [CompletionResult]::new('--tcp-idle', '--tcp-idle', [CompletionResultType]::ParameterName, 'Close a TCP connection that has not logged in, or has sent half a frame, after this long')
            [CompletionResult]::new('--stats-interval', '--stats-interval', [CompletionResultType]::ParameterName, 'Print a statistics line this often (0 disables; SIGUSR1 prints one on demand)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Log events as NDJSON on stderr instead of human-readable lines')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Log only warnings and statistics, not every login, call and drop')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Log only warnings and statistics, not every login, call and drop')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;login' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Location server to log in to')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Location server to log in to')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The ID to log in as')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Transport for the session with the server')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Transport for the session with the server')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often to refresh the session (UDP keeps the NAT mapping open with it)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Log out and exit after this long (default: hold the session until interrupted)')
            [CompletionResult]::new('--calls', '--calls', [CompletionResultType]::ParameterName, 'Exit after answering this many calls')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (NDJSON events for long-running commands)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;call' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Location server to log in to')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Location server to log in to')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'The ID to log in as')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'Transport for the session with the server')
            [CompletionResult]::new('--transport', '--transport', [CompletionResultType]::ParameterName, 'Transport for the session with the server')
            [CompletionResult]::new('--keepalive', '--keepalive', [CompletionResultType]::ParameterName, 'How often to refresh the session (UDP keeps the NAT mapping open with it)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up on the call after this long')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print machine-readable JSON on stdout (NDJSON events for long-running commands)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'natlens;help' {
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run a location server: STUN Binding reflection, logins, call relay, federation')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Log in to a location server and hold the session, answering calls with this end''s facts')
            [CompletionResult]::new('call', 'call', [CompletionResultType]::ParameterValue, 'Log in, call another logged-in ID through the server and print the facts exchanged')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'natlens;help;server' {
            break
        }
        'natlens;help;login' {
            break
        }
        'natlens;help;call' {
            break
        }
        'natlens;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
