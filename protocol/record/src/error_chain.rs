//! One way to render an error with its causes on one line. Errors in this
//! workspace either print their source or return it, never both; whoever
//! shows an error to a person (an API message, a log line, the CLI) prints
//! the chain with this, so every cause appears exactly once.

use std::error::Error;
use std::fmt;

/// Displays an error and its sources as `outer: inner: root`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn prints_every_cause_once() {
        let e = Outer(std::io::Error::other("root cause"));
        assert_eq!(ErrorChain(&e).to_string(), "outer: root cause");
    }
}
