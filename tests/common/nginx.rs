//! nginx from apt as a test's child, running a configuration file from
//! docs/ with only names, ports, paths and upstreams replaced.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// A file from docs/, as operators copy it.
pub fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced; the docs file must still say `from`, or
/// the test would no longer run the documented configuration.
pub fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the docs file no longer contains {from:?}"
    );
    text.replace(from, to)
}

/// `site` (what an operator puts in conf.d) inside the smallest main
/// configuration nginx runs with as a child: no daemon, one process, every
/// file in `dir`. Returns the main file's path.
pub fn config(dir: &Path, site: &str) -> PathBuf {
    let site_path = dir.join("onair.conf");
    std::fs::write(&site_path, site).unwrap();
    let temp = dir.join("nginx-temp");
    std::fs::create_dir_all(&temp).unwrap();
    let t = temp.display();
    let main = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\nevents {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  \
         fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  \
         include {site};\n}}\n",
        d = dir.display(),
        site = site_path.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    path
}

/// nginx on `conf` (from [`config`]), its stderr in `dir/proxy.log`.
pub fn spawn(dir: &Path, conf: &Path) -> Child {
    let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
    Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("nginx is installed (apt-get install nginx): {e}"))
}

/// What nginx said, for a failure's message.
pub fn log(dir: &Path) -> String {
    let mut text = std::fs::read_to_string(dir.join("proxy.log")).unwrap_or_default();
    text += &std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
    text
}
