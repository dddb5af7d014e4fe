//! One module per subcommand: `Args` for clap and an async `run` returning the exit code.

pub(crate) mod bench;
pub(crate) mod connect;
pub(crate) mod echo;
pub(crate) mod serve;
