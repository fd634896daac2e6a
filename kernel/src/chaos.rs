//! Fault injection for recovery tests: the boot option
//! `mica.chaos=NAME[,NAME...]@MS[xCOUNT]` kills the named service tasks in
//! turn, one every `MS` milliseconds (`COUNT` kills in all, or for ever),
//! as if each had faulted at that moment (in the middle of whatever it was
//! doing). The supervisor restarts them and the system must recover;
//! nothing else changes. A name written `hang:NAME` makes that service
//! hang instead: from its next wait for a request on, it never runs again
//! (its callers queue, unanswered), as a service stuck in a loop would;
//! the supervisor's watchdog must find and kill it. Without the option the
//! kernel never kills or stops a healthy task.

/// The boot option's name.
pub const BOOT_OPTION: &str = "mica.chaos";
/// Written before a name: that service hangs rather than dies.
pub const HANG: &str = "hang:";

/// What befalls a service when its turn comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault<'a> {
    /// It is killed, as if it had faulted.
    Kill(&'a str),
    /// It stops answering ([`HANG`]).
    Hang(&'a str),
}

impl<'a> Fault<'a> {
    /// The fault a victim's name (as written in the option) asks for.
    pub fn of(victim: &'a str) -> Self {
        match victim.strip_prefix(HANG) {
            Some(name) => Fault::Hang(name),
            None => Fault::Kill(victim),
        }
    }
}
/// At most this many services take turns.
pub const MAX_VICTIMS: usize = 4;
/// The shortest period accepted, in milliseconds (a service must get the
/// time to start again between two kills).
pub const MIN_PERIOD_MS: u64 = 50;

/// Which services die, and when the next one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chaos<'a> {
    victims: [&'a str; MAX_VICTIMS],
    count: usize,
    period_ms: u64,
    /// Kills left; `None`: no end.
    left: Option<u64>,
    turn: usize,
    next_ms: u64,
}

impl<'a> Chaos<'a> {
    /// Reads the option from the kernel command line: `Ok(None)` when it is
    /// absent, the offending word when it does not parse (no names, too
    /// many, an empty name, no `@MS`, a period under [`MIN_PERIOD_MS`],
    /// or a count that is not a number).
    pub fn from_cmdline(cmdline: &'a str) -> Result<Option<Self>, &'a str> {
        let mut found = None;
        for word in cmdline.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix(BOOT_OPTION) else {
                continue;
            };
            if rest.is_empty() {
                return Err(word);
            }
            let Some(value) = rest.strip_prefix('=') else {
                continue;
            };
            found = Some(Self::parse(value).ok_or(word)?);
        }
        Ok(found)
    }

    fn parse(value: &'a str) -> Option<Self> {
        let (names, timing) = value.split_once('@')?;
        let (period, left) = match timing.split_once('x') {
            Some((period, count)) => (period, Some(count.parse::<u64>().ok()?)),
            None => (timing, None),
        };
        let period_ms = period.parse::<u64>().ok()?;
        if period_ms < MIN_PERIOD_MS {
            return None;
        }
        let mut victims = [""; MAX_VICTIMS];
        let mut count = 0;
        for name in names.split(',') {
            if name.is_empty() || name == HANG {
                return None;
            }
            *victims.get_mut(count)? = name;
            count += 1;
        }
        Some(Self {
            victims,
            count,
            period_ms,
            left,
            turn: 0,
            next_ms: period_ms,
        })
    }

    /// The services that take turns, in order.
    pub fn victims(&self) -> &[&'a str] {
        &self.victims[..self.count]
    }

    /// The period in milliseconds.
    pub fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// How many kills there are to be in all (`None`: no end).
    pub fn count(&self) -> Option<u64> {
        self.left
    }

    /// At `now_ms` (since the tasks started), the service to kill, if one
    /// is due; the next falls one period later (periods missed while the
    /// kernel was busy are not made up).
    pub fn due(&mut self, now_ms: u64) -> Option<&'a str> {
        if now_ms < self.next_ms || self.count == 0 || self.left == Some(0) {
            return None;
        }
        if let Some(left) = &mut self.left {
            *left -= 1;
        }
        let victim = self.victims[self.turn % self.count];
        self.turn = (self.turn + 1) % self.count;
        self.next_ms = now_ms.saturating_add(self.period_ms);
        Some(victim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_prefix_names_a_service_to_hang_and_needs_a_name() {
        let mut chaos = Chaos::from_cmdline("mica.chaos=hang:ioreq,devices@100x2")
            .unwrap()
            .unwrap();
        assert_eq!(chaos.due(100).map(Fault::of), Some(Fault::Hang("ioreq")));
        assert_eq!(chaos.due(200).map(Fault::of), Some(Fault::Kill("devices")));
        assert_eq!(
            Chaos::from_cmdline("mica.chaos=hang:@100"),
            Err("mica.chaos=hang:@100")
        );
    }

    #[test]
    fn no_option_means_no_chaos() {
        assert_eq!(Chaos::from_cmdline("console=ttyS0 mica.vm_ids=3"), Ok(None));
        assert_eq!(Chaos::from_cmdline(""), Ok(None));
    }

    #[test]
    fn names_take_turns_one_period_apart() {
        let mut chaos = Chaos::from_cmdline("x mica.chaos=ioreq,devices@200 y")
            .unwrap()
            .unwrap();
        assert_eq!(chaos.victims(), ["ioreq", "devices"]);
        assert_eq!(chaos.period_ms(), 200);
        assert_eq!(chaos.due(199), None);
        assert_eq!(chaos.due(200), Some("ioreq"));
        assert_eq!(chaos.due(300), None);
        assert_eq!(chaos.due(450), Some("devices"));
        // The next is one period after the last kill, not on a fixed grid.
        assert_eq!(chaos.due(600), None);
        assert_eq!(chaos.due(650), Some("ioreq"));
    }

    #[test]
    fn a_late_check_kills_one_service_not_a_backlog() {
        let mut chaos = Chaos::from_cmdline("mica.chaos=devices@100")
            .unwrap()
            .unwrap();
        assert_eq!(chaos.due(10_000), Some("devices"));
        assert_eq!(chaos.due(10_001), None);
        assert_eq!(chaos.due(10_100), Some("devices"));
    }

    #[test]
    fn a_count_ends_the_kills() {
        let mut chaos = Chaos::from_cmdline("mica.chaos=ioreq,devices@100x3")
            .unwrap()
            .unwrap();
        assert_eq!(chaos.count(), Some(3));
        assert_eq!(chaos.due(100), Some("ioreq"));
        assert_eq!(chaos.due(200), Some("devices"));
        assert_eq!(chaos.due(300), Some("ioreq"));
        assert_eq!(chaos.due(400), None);
        assert_eq!(chaos.due(100_000), None);
        let endless = Chaos::from_cmdline("mica.chaos=ioreq@100").unwrap();
        assert_eq!(endless.unwrap().count(), None);
    }

    #[test]
    fn bad_values_name_the_word() {
        for bad in [
            "mica.chaos",
            "mica.chaos=",
            "mica.chaos=ioreq",
            "mica.chaos=ioreq@",
            "mica.chaos=@100",
            "mica.chaos=ioreq,,devices@100",
            "mica.chaos=ioreq@10",
            "mica.chaos=ioreq@ten",
            "mica.chaos=a,b,c,d,e@100",
            "mica.chaos=ioreq@100x",
            "mica.chaos=ioreq@100xmany",
            "mica.chaos=ioreq@x3",
        ] {
            assert_eq!(Chaos::from_cmdline(bad), Err(bad), "{bad}");
        }
    }

    #[test]
    fn the_last_option_wins() {
        let chaos = Chaos::from_cmdline("mica.chaos=ioreq@100 mica.chaos=devices@300")
            .unwrap()
            .unwrap();
        assert_eq!(chaos.victims(), ["devices"]);
    }
}
