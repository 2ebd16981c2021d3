//! Lab prefixes in the completion scripts: `lab down PREFIX`, `lab status PREFIX` and
//! `lab exec --lab PREFIX` complete to the labs that exist now, the state files
//! `/run/natlens/<prefix>.json`.
//!
//! clap_complete writes static scripts and cannot list files of a given pattern by their stem,
//! so a short hand-reviewed snippet per shell is spliced into its script (bash, zsh, fish; elvish
//! and PowerShell keep the static script). Each splice checks that clap's script has the shape it
//! expects and panics otherwise, so a clap_complete upgrade that changes it fails the tests
//! instead of silently losing the completion.

use clap_complete::Shell;

/// Adds the lab-prefix completion to `script`, clap_complete's script for `shell`.
pub fn add(shell: Shell, script: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(script).expect("clap_complete writes UTF-8");
    let text = match shell {
        Shell::Bash => bash(&text),
        Shell::Zsh => zsh(&text),
        Shell::Fish => fish(&text),
        _ => text,
    };
    text.into_bytes()
}

/// `text` with `from` replaced by `to`, which must occur exactly `times` times.
fn replace_exactly(text: &str, from: &str, to: &str, times: usize) -> String {
    let found = text.matches(from).count();
    assert_eq!(
        found, times,
        "clap_complete's script changed: {from:?} found {found} times, not {times}"
    );
    text.replace(from, to)
}

/// `text` with `snippet` inserted right before `anchor`, which must occur exactly once.
fn insert_before(text: &str, anchor: &str, snippet: &str) -> String {
    replace_exactly(text, anchor, &format!("{snippet}{anchor}"), 1)
}

const BASH: &str = r#"# natlens: the prefixes of the labs that exist now (/run/natlens/<prefix>.json) for
# `lab down`, `lab status` and `lab exec --lab`; everything else is clap's _natlens.
_natlens_lab_prefixes() {
    local state
    for state in /run/natlens/*.json; do
        [[ -e "${state}" ]] && basename "${state}" .json
    done
}

_natlens_with_labs() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" i command=""
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case "${command} ${COMP_WORDS[i]}" in
            " lab") command="lab" ;;
            "lab down"|"lab status"|"lab exec") command="lab ${COMP_WORDS[i]}" ;;
        esac
    done
    if [[ ( "${command}" == "lab down" || "${command}" == "lab status" ) && "${cur}" != -* ]] \
        || [[ "${command}" == "lab exec" && "${prev}" == "--lab" ]]; then
        COMPREPLY=( $(compgen -W "$(_natlens_lab_prefixes)" -- "${cur}") )
        return 0
    fi
    _natlens "$@"
}

"#;

fn bash(text: &str) -> String {
    let anchor = "if [[ \"${BASH_VERSINFO[0]}\" -eq 4";
    let text = insert_before(text, anchor, BASH);
    replace_exactly(
        &text,
        "complete -F _natlens -o",
        "complete -F _natlens_with_labs -o",
        2,
    )
}

const ZSH: &str = r#"# natlens: the prefixes of the labs that exist now (/run/natlens/<prefix>.json).
(( $+functions[_natlens_lab_prefixes] )) ||
_natlens_lab_prefixes() {
    local -a prefixes
    prefixes=(/run/natlens/*.json(N:t:r))
    _describe -t labs 'natlens lab' prefixes
}

"#;

/// zsh: the three prefix arguments get `_natlens_lab_prefixes` as their action instead of
/// `_default` (clap writes `:PREFIX:_default` for `--lab` and `::prefix -- …:_default` for the
/// positional ones).
fn zsh(text: &str) -> String {
    let mut found = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let prefix_arg = line.starts_with("'::prefix -- ") || line.contains("]:PREFIX:");
            match line.strip_suffix(":_default' \\") {
                Some(start) if prefix_arg => {
                    found += 1;
                    format!("{start}:_natlens_lab_prefixes' \\")
                }
                _ => line.to_owned(),
            }
        })
        .collect();
    assert_eq!(
        found, 3,
        "clap_complete's zsh script changed: {found} prefix arguments"
    );
    let text = lines.join("\n") + "\n";
    insert_before(&text, "if [ \"$funcstack[1]\" = \"_natlens\" ]; then", ZSH)
}

const FISH: &str = r#"
# natlens: the prefixes of the labs that exist now (/run/natlens/<prefix>.json), and the host
# names `lab exec` takes (clap's fish script offers no values for positional arguments).
function __fish_natlens_lab_prefixes
    for state in /run/natlens/*.json
        basename $state .json
    end
end
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from down status" -f -a "(__fish_natlens_lab_prefixes)" -d 'lab'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -l lab -x -a "(__fish_natlens_lab_prefixes)" -d 'lab'
complete -c natlens -n "__fish_natlens_using_subcommand lab; and __fish_seen_subcommand_from exec" -f -a "HOSTS" -d 'lab host'
"#;

fn fish(text: &str) -> String {
    // The condition function the snippet relies on must exist in clap's script.
    assert!(
        text.contains("function __fish_natlens_using_subcommand"),
        "clap_complete's fish script changed: no __fish_natlens_using_subcommand"
    );
    let hosts = crate::cli::LAB_HOST_NAMES.join(" ");
    format!("{text}{}", FISH.replace("HOSTS", &hosts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::completion;

    fn script(shell: Shell) -> String {
        String::from_utf8(completion(shell).1).unwrap()
    }

    #[test]
    fn bash_completes_lab_prefixes_then_hands_over_to_clap() {
        let text = script(Shell::Bash);
        assert!(text.contains("_natlens_lab_prefixes()"), "{text}");
        assert!(!text.contains("complete -F _natlens -o"), "{text}");
        assert_eq!(text.matches("complete -F _natlens_with_labs -o").count(), 2);
    }

    #[test]
    fn zsh_completes_the_three_prefix_arguments() {
        let text = script(Shell::Zsh);
        assert_eq!(text.matches(":_natlens_lab_prefixes' \\").count(), 3);
        assert!(text.ends_with("fi\n"), "{text}");
    }

    #[test]
    fn fish_completes_lab_prefixes() {
        assert!(script(Shell::Fish).contains("(__fish_natlens_lab_prefixes)"));
    }

    /// NAT modes and lab hosts come from the value parsers' suggestions (elvish and PowerShell
    /// scripts complete options only).
    #[test]
    fn every_shell_offers_nat_modes_and_lab_hosts() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            // zsh escapes the colon of `seq:2`.
            for word in ["full-cone", "seq", "router-a", "b2"] {
                assert!(text.contains(word), "{shell}: {word} missing");
            }
        }
    }
}
