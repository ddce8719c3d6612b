use clap::Parser;
use onair::config::{ChannelAction, Cli, Command, Config};
use onair::db::Db;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so admin commands print only their answer on stdout.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "info,rtc=warn,rtc_ice=warn,rtc_dtls=warn,rtc_sctp=warn".into()
            }),
        )
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::resolve(&cli.global, &cli.serve)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listeners = onair::Listeners::bind(&config).await?;
            onair::run(config, listeners, onair::server::signal()).await
        }
        Command::Channel { action } => {
            let db = Db::open(&config.database_url).await?;
            match action {
                ChannelAction::Create { name } => {
                    let ch = db.create_channel(&name).await?;
                    println!("{}", ch.stream_key);
                }
                ChannelAction::List => {
                    for ch in db.channels().await? {
                        println!("{}\t{}", ch.name, ch.created_at);
                    }
                }
            }
            Ok(())
        }
    }
}
