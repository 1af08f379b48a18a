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
