//! A lab built with `natlens lab up` (the CLI, as a user builds one), torn down with
//! `natlens lab down PREFIX` when dropped (also when a test panics): for tests that drive the
//! lab's hosts with `natlens lab exec` and look into its routers.

use std::process::Command;

const NATLENS: &str = env!("CARGO_BIN_EXE_natlens");

pub struct UpLab {
    pub prefix: String,
}

impl UpLab {
    /// `natlens lab up ARGS`; panics with its output if it fails.
    pub fn up(args: &[&str]) -> UpLab {
        let out = Command::new(NATLENS)
            .args(["lab", "up"])
            .args(args)
            .output()
            .expect("run natlens lab up");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "lab up {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let prefix = text
            .split_whitespace()
            .nth(1)
            .expect("lab up prints `lab PREFIX: ...`")
            .trim_end_matches(':')
            .to_string();
        UpLab { prefix }
    }

    /// `natlens ARGS` on `host` of this lab, through `natlens lab exec`.
    pub fn exec(&self, host: &str, args: &[&str]) -> Command {
        let mut command = Command::new(NATLENS);
        command
            .args(["lab", "exec", "--lab", &self.prefix, host, "--", "natlens"])
            .args(args);
        command
    }

    /// `natlens ARGS` on `host` as a direct child (`ip netns exec` replaces itself with the
    /// command), so that a signal sent to the child reaches natlens itself.
    pub fn exec_direct(&self, host: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &format!("{}-{host}", self.prefix), NATLENS])
            .args(args);
        command
    }

    /// Router a's nft ruleset.
    pub fn router_a_ruleset(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{}-router-a", self.prefix)])
            .args(["nft", "list", "ruleset"])
            .output()
            .expect("nft list ruleset");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// True while router a holds a port mapping: every rule miniupnpd adds for one names a
    /// destination port, and none of the lab's own rules in miniupnpd's table does (the IPv6
    /// firewall's pinhole rules elsewhere do, so only that table is read).
    pub fn router_a_holds_a_mapping(&self) -> bool {
        self.router_a_miniupnpd_table().contains("dport")
    }

    /// Router a's nft table that miniupnpd manages (its mapping rules, nothing of the lab's);
    /// empty in a lab without miniupnpd.
    pub fn router_a_miniupnpd_table(&self) -> String {
        let ruleset = self.router_a_ruleset();
        ruleset
            .split("\ntable ")
            .find(|table| table.contains("natlens_upnp {"))
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for UpLab {
    fn drop(&mut self) {
        let _ = Command::new(NATLENS)
            .args(["lab", "down", &self.prefix])
            .output();
    }
}
