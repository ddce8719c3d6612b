use clap::Parser;
use onair::config::{ChannelAction, Cli, Command, Config, UserAction};
use onair::db::Db;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr so admin commands print only their answer on stdout.
    // The TURN server crate logs every refused packet at ERROR, and rtc
    // warns for every datagram it drops (a bad SRTP tag, a STUN check with
    // the wrong username): either would let any client flood the log. The
    // relay's and the SFU's own lines say what matters.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        "info,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_sctp=error,turn=off".into()
    });
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if cli.global.log_format.as_deref() == Some("json") {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
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
        Command::User {
            action:
                UserAction::Create {
                    name,
                    role,
                    password_stdin,
                },
        } => {
            let role = onair::db::Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role must be admin, moderator, broadcaster or viewer")
            })?;
            if !password_stdin {
                anyhow::bail!("give the password on standard input with --password-stdin");
            }
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            onair::auth::check_username(&name)?;
            onair::auth::check_password(password)?;
            let hash = onair::auth::hash_password(password)?;
            let db = Db::open(&config.database_url).await?;
            let (_, channel) = db.create_user(&name, &hash, None, role, true).await?;
            println!("{}", channel.stream_key);
            Ok(())
        }
        Command::Health => {
            // The plain listener keeps /healthz with TLS on, so this works
            // either way. A wildcard address is asked on loopback.
            let mut addr = config.http;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let url = format!("http://{addr}/healthz");
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()?;
            let r = client.get(&url).send().await?;
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            if !status.is_success() {
                anyhow::bail!("{url}: {status}: {}", body.trim());
            }
            println!("{}", body.trim());
            Ok(())
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
                ChannelAction::Recording { name, state } => {
                    if !db.set_channel_recording(&name, state == "on").await? {
                        anyhow::bail!("no channel named {name}");
                    }
                    println!("{name}\trecording {state}");
                }
            }
            Ok(())
        }
    }
}
