//! The config file: its keys are the long flags' names, read into the
//! same structs the flags fill, and laid under the flags and environment.
//! Also what `onair config check` prints.

use super::{Config, ConfigError, GlobalArgs, ServeArgs};

/// The settings a TOML file may hold: the keys are the long flags' names
/// (`http = "0.0.0.0:8080"`), declared once, on the flag structs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(flatten)]
    pub global: GlobalArgs,
    #[serde(flatten)]
    pub serve: ServeArgs,
}

/// The settings given on the command line or in the environment (by kebab
/// key): these beat the file, which beats the flags' defaults.
#[derive(Debug, Default, Clone)]
pub struct Explicit(std::collections::HashSet<String>);

impl Explicit {
    /// From clap's matches: every argument a flag or variable set.
    pub fn from_matches(m: &clap::ArgMatches) -> Explicit {
        use clap::parser::ValueSource;
        let mut keys = std::collections::HashSet::new();
        let mut add = |m: &clap::ArgMatches| {
            for id in m.ids() {
                if matches!(
                    m.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                ) {
                    keys.insert(id.as_str().replace('_', "-"));
                }
            }
        };
        add(m);
        // Global flags may come after the subcommand.
        let mut sub = m.subcommand();
        while let Some((_, sm)) = sub {
            add(sm);
            sub = sm.subcommand();
        }
        Explicit(keys)
    }

    fn contains(&self, key: &str) -> bool {
        self.0.contains(key)
    }
}

/// A config file read and checked: its settings as JSON values by key,
/// and the keys no setting has.
pub struct FileSettings {
    values: serde_json::Map<String, serde_json::Value>,
    pub unknown: Vec<String>,
}

impl FileSettings {
    pub fn read(path: &std::path::Path) -> Result<FileSettings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Parse(path.to_path_buf(), e))?;
        let serde_json::Value::Object(values) = serde_json::to_value(table)
            .map_err(|e| ConfigError::Value(path.to_path_buf(), e.to_string()))?
        else {
            unreachable!("a TOML table is a JSON object");
        };
        let known = known_keys();
        let mut unknown: Vec<String> = values
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        // Each value on its own, so an error names its key.
        for (k, v) in &values {
            if known.contains(k.as_str()) {
                let one = serde_json::Value::Object([(k.clone(), v.clone())].into_iter().collect());
                serde_json::from_value::<Settings>(one)
                    .map_err(|e| ConfigError::Value(path.to_path_buf(), format!("{k}: {e}")))?;
            }
        }
        Ok(FileSettings { values, unknown })
    }
}

/// Every key a config file may set.
pub fn known_keys() -> std::collections::BTreeSet<String> {
    match serde_json::to_value(Settings::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => unreachable!("the settings serialize as a map"),
    }
}

/// The flags and environment laid over the file: a key given on the
/// command line or in the environment keeps its value, any other takes
/// the file's, if it has one (else the flag's default).
pub fn layered(
    global: &GlobalArgs,
    serve: &ServeArgs,
    file: Option<&FileSettings>,
    explicit: &Explicit,
) -> Result<Settings, ConfigError> {
    let given = Settings {
        global: global.clone(),
        serve: serve.clone(),
    };
    let Some(file) = file else {
        return Ok(given);
    };
    let Ok(serde_json::Value::Object(mut merged)) = serde_json::to_value(&given) else {
        unreachable!("the settings serialize as a map");
    };
    for (k, v) in &file.values {
        if merged.contains_key(k) && !explicit.contains(k) {
            merged.insert(k.clone(), v.clone());
        }
    }
    let mut settings: Settings = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| {
            ConfigError::Value(global.config.clone().unwrap_or_default(), e.to_string())
        })?;
    // Flags and environment only.
    settings.global.config = global.config.clone();
    settings.global.log_format = global.log_format.clone();
    settings.serve.fault_injection = serve.fault_injection;
    settings.serve.tls.acme_renew_before = serve.tls.acme_renew_before;
    settings.serve.tls.acme_retry = serve.tls.acme_retry;
    Ok(settings)
}

/// Keys whose values are secrets, and keys whose URLs may carry one.
const SECRET_KEYS: &[&str] = &["turn-secret", "webhook-secret", "metrics-token"];
const URL_KEYS: &[&str] = &["smtp-url", "database-url"];

/// `settings` as a TOML file, one key a line (unset ones commented out),
/// secrets masked; `database-url` as `config` resolved it.
pub fn render(settings: &Settings, config: &Config) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::to_value(settings) else {
        unreachable!("the settings serialize as a map");
    };
    map.insert(
        "database-url".into(),
        serde_json::Value::String(config.database_url.clone()),
    );
    let mut out = String::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        let v = &map[k];
        if v.is_null() || *v == serde_json::json!([]) {
            out.push_str(&format!("# {k} =\n"));
            continue;
        }
        let v = match v {
            serde_json::Value::String(_) if SECRET_KEYS.contains(&k.as_str()) => {
                serde_json::Value::String("(secret)".into())
            }
            serde_json::Value::String(u) if URL_KEYS.contains(&k.as_str()) => {
                serde_json::Value::String(mask_url_password(u))
            }
            serde_json::Value::Array(specs) if k == "oidc-provider" => specs
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(p) => {
                        serde_json::Value::String(crate::auth::oidc::mask_secret(p))
                    }
                    v => v.clone(),
                })
                .collect(),
            v => v.clone(),
        };
        match toml::Value::try_from(&v) {
            Ok(t) => out.push_str(&format!("{k} = {t}\n")),
            Err(_) => out.push_str(&format!("{k} = {v}\n")),
        }
    }
    out
}

/// `scheme://user:password@host...` with the password replaced.
fn mask_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:(secret)@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// CIDR lists as strings in the file.
pub(super) mod cidrs {
    use crate::net::Cidr;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Cidr], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|c| c.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|c| c.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

/// Durations as the flags take them (`2s`, `500ms`).
pub(crate) mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) if d.subsec_millis() != 0 => s.serialize_str(&format!("{}ms", d.as_millis())),
            Some(d) => s.serialize_str(&format!("{}s", d.as_secs())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| crate::hooks::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}
