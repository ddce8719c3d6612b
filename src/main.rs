use clap::{CommandFactory, FromArgMatches};
use onair::config::{ChannelAction, Cli, Command, Config, ConfigAction, Explicit, UserAction};
use onair::db::Db;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let explicit = Explicit::from_matches(&matches);
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
    match rt.block_on(run(cli, explicit)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, explicit: Explicit) -> anyhow::Result<()> {
    if let Some(Command::Config {
        action: ConfigAction::Check { file },
    }) = &cli.command
    {
        return config_check(&cli, file, &explicit);
    }
    let mut cli = cli;
    if let Some(Command::Serve { role: Some(role) }) = cli.command {
        cli.serve.role = Some(role);
    }
    let config = Config::resolve_from(&cli.global, &cli.serve, &explicit)?;
    match cli.command.unwrap_or(Command::Serve { role: None }) {
        Command::Serve { .. } => {
            let listeners = onair::Listeners::bind(&config).await?;
            onair::run(config, listeners, onair::server::signal()).await
        }
        Command::User { action } => user(&config, action).await,
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
        Command::Channel { action } => channel(&config, action).await,
        Command::Config { .. } => unreachable!("handled above"),
    }
}

/// `onair config check FILE`.
fn config_check(cli: &Cli, file: &std::path::Path, explicit: &Explicit) -> anyhow::Result<()> {
    let settings = onair::config::FileSettings::read(file)?;
    if !settings.unknown.is_empty() {
        anyhow::bail!(
            "{}: unknown keys: {} (the keys are the long flags' names: onair --help)",
            file.display(),
            settings.unknown.join(", ")
        );
    }
    let s = onair::config::layered(&cli.global, &cli.serve, Some(&settings), explicit)?;
    let config = Config::from_settings(&s.global, &s.serve)?;
    print!("{}", onair::config::render(&s, &config));
    Ok(())
}

/// The first line of standard input, without its line ending.
fn password_from_stdin(password_stdin: bool) -> anyhow::Result<String> {
    if !password_stdin {
        anyhow::bail!("give the password on standard input with --password-stdin");
    }
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    onair::auth::check_password(&password)?;
    Ok(password)
}

/// An account that exists and is not deleted.
async fn active_user(db: &Db, name: &str) -> anyhow::Result<onair::db::User> {
    match db.credentials(name).await? {
        Some(c) if c.user.deleted_at.is_none() => Ok(c.user),
        Some(_) => anyhow::bail!("user {name} is deleted"),
        None => anyhow::bail!("no user named {name}"),
    }
}

async fn user(config: &Config, action: UserAction) -> anyhow::Result<()> {
    let db = Db::open(&config.database_url).await?;
    match action {
        UserAction::Create {
            name,
            role,
            password_stdin,
        } => {
            let role = onair::db::Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role must be admin, moderator, broadcaster or viewer")
            })?;
            onair::auth::check_username(&name)?;
            let password = password_from_stdin(password_stdin)?;
            let hash = onair::auth::hash_password(&password)?;
            let (_, channel) = db.create_user(&name, &hash, None, role, true).await?;
            if role.streams() {
                println!("{}", channel.stream_key);
            } else {
                eprintln!("{name} is a viewer: no stream key until given another role");
            }
        }
        UserAction::List => {
            for u in db.users().await? {
                let state = if u.deleted_at.is_some() {
                    "deleted"
                } else {
                    "active"
                };
                println!(
                    "{}\t{}\t{state}\t{}",
                    u.username,
                    u.role.as_str(),
                    onair::chat::rfc3339(u.created_at)
                );
            }
        }
        UserAction::Passwd {
            name,
            password_stdin,
        } => {
            let user = active_user(&db, &name).await?;
            let password = password_from_stdin(password_stdin)?;
            let hash = onair::auth::hash_password(&password)?;
            db.set_password_hash(user.id, &hash).await?;
            // Whoever knew the old password is signed out.
            db.delete_sessions(user.id).await?;
            println!("{name}\tpassword set; signed out everywhere");
        }
        UserAction::Role { name, role } => {
            let user = active_user(&db, &name).await?;
            let role = onair::db::Role::parse(&role).expect("clap checked the role");
            db.set_role(user.id, role).await?;
            println!("{name}\t{}", role.as_str());
            // As over the API: a key is issued with the right to stream and
            // withdrawn with it (a running server refuses the old one at
            // the next publish).
            if user.role.streams() != role.streams() {
                let key = db.rotate_stream_key(&name).await?;
                if role.streams() {
                    println!("{key}");
                }
            }
        }
        UserAction::Delete { name } => {
            let user = active_user(&db, &name).await?;
            db.soft_delete_user(user.id).await?;
            println!("{name}\tdeleted");
        }
    }
    Ok(())
}

async fn channel(config: &Config, action: ChannelAction) -> anyhow::Result<()> {
    let db = Db::open(&config.database_url).await?;
    match action {
        ChannelAction::Create { name } => {
            let ch = db.create_channel(&name).await?;
            println!("{}", ch.stream_key);
        }
        ChannelAction::List { live } => {
            let live_now = if live {
                Some(db.live_channels().await?)
            } else {
                None
            };
            for ch in db.channels().await? {
                if live_now.as_ref().is_some_and(|l| !l.contains(&ch.name)) {
                    continue;
                }
                println!("{}\t{}", ch.name, onair::chat::rfc3339(ch.created_at));
            }
        }
        ChannelAction::Recording { name, state } => {
            if !db.set_channel_recording(&name, state == "on").await? {
                anyhow::bail!("no channel named {name}");
            }
            println!("{name}\trecording {state}");
        }
        ChannelAction::RotateKey { name } => {
            if db.channel(&name).await?.is_none() {
                anyhow::bail!("no channel named {name}");
            }
            println!("{}", db.rotate_stream_key(&name).await?);
        }
        ChannelAction::Delete { name } => {
            let broadcasts = db.delete_channel(&name).await?;
            let root = config.data_dir.join("recordings");
            for id in &broadcasts {
                match std::fs::remove_dir_all(root.join(id.to_string())) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => eprintln!(
                        "warning: recording {id}: {e} (a server removes it at its next start)"
                    ),
                    _ => {}
                }
            }
            println!("{name}\tdeleted with {} broadcasts", broadcasts.len());
        }
    }
    Ok(())
}
