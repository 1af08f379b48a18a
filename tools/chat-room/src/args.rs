//! Command-line arguments: `COMMAND [POSITIONAL] --name value --name=value`.

use std::fmt::Display;
use std::str::FromStr;

/// What is left of the command line; each command takes what it knows and
/// then calls [`Args::finish`], which rejects anything left over.
pub struct Args {
    rest: Vec<String>,
}

impl Args {
    pub fn from_env() -> Self {
        Self {
            rest: std::env::args().skip(1).collect(),
        }
    }

    /// Takes the first argument if it is not an option.
    pub fn command(&mut self) -> Option<String> {
        match self.rest.first() {
            Some(first) if !first.starts_with("--") => Some(self.rest.remove(0)),
            _ => None,
        }
    }

    /// Takes `--name value` or `--name=value`.
    pub fn value(&mut self, name: &str) -> Option<String> {
        let flag = format!("--{name}");
        let prefix = format!("--{name}=");
        let at = self
            .rest
            .iter()
            .position(|a| *a == flag || a.starts_with(&prefix))?;
        let arg = self.rest.remove(at);
        match arg.strip_prefix(&prefix) {
            Some(value) => Some(value.to_owned()),
            None if at < self.rest.len() => Some(self.rest.remove(at)),
            None => Some(String::new()),
        }
    }

    /// Takes the switch `--name` (no value); whether it was there.
    pub fn flag(&mut self, name: &str) -> bool {
        let flag = format!("--{name}");
        let before = self.rest.len();
        self.rest.retain(|a| *a != flag);
        self.rest.len() < before
    }

    /// Takes and parses `--name`, or gives `default`.
    pub fn get<T>(&mut self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.value(name) {
            Some(value) => value
                .parse()
                .map_err(|e| format!("--{name} {value:?}: {e}")),
            None => Ok(default),
        }
    }

    /// Takes and parses a comma-separated `--name`, or gives `default`.
    pub fn list<T>(&mut self, name: &str, default: &[T]) -> Result<Vec<T>, String>
    where
        T: FromStr + Clone,
        T::Err: Display,
    {
        match self.value(name) {
            Some(value) => value
                .split(',')
                .filter(|v| !v.is_empty())
                .map(|v| v.parse().map_err(|e| format!("--{name} {v:?}: {e}")))
                .collect(),
            None => Ok(default.to_vec()),
        }
    }

    /// Takes a CPU list `--name` as taskset(1) writes one (`0-7`, `0,2,4`,
    /// `0-3,8-11`), or gives `default`.
    pub fn cores(&mut self, name: &str, default: &[usize]) -> Result<Vec<usize>, String> {
        let Some(value) = self.value(name) else {
            return Ok(default.to_vec());
        };
        let bad = |why: String| format!("--{name} {value:?}: {why}");
        let mut cores = Vec::new();
        for part in value.split(',').filter(|p| !p.is_empty()) {
            let (first, last) = part.split_once('-').unwrap_or((part, part));
            let parse = |v: &str| v.parse::<usize>().map_err(|e| bad(format!("{v:?}: {e}")));
            let (first, last) = (parse(first)?, parse(last)?);
            if first > last {
                return Err(bad(format!("{part:?} runs backwards")));
            }
            cores.extend(first..=last);
        }
        if cores.is_empty() {
            return Err(bad("no cores".to_owned()));
        }
        Ok(cores)
    }

    /// Fails on any argument nobody took.
    pub fn finish(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown arguments: {} (see `chat-room help`)",
                self.rest.join(" ")
            ))
        }
    }
}

/// A CPU list for taskset(1): `0,1,2`.
pub fn core_list(cores: &[usize]) -> String {
    let cores: Vec<String> = cores.iter().map(usize::to_string).collect();
    cores.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Args {
        Args {
            rest: line.split_whitespace().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn core_lists_take_ranges_and_singles() {
        let mut a = args("--server-cores 0-3,8,10-11 --client-cores=5");
        assert_eq!(
            a.cores("server-cores", &[0]),
            Ok(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(a.cores("client-cores", &[1]), Ok(vec![5]));
        assert_eq!(a.cores("other", &[1, 2]), Ok(vec![1, 2]));
        assert!(args("--c 3-1").cores("c", &[]).is_err());
        assert!(args("--c x").cores("c", &[]).is_err());
        assert_eq!(core_list(&[0, 1, 7]), "0,1,7");
    }
}
