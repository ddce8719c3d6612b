//! Points the embedded web app (`src/http/web.rs`) at `web/dist` when it has
//! been built (`scripts/setup.sh` builds it for the run and test commands),
//! and otherwise at a one-page placeholder, so `cargo build` and `cargo
//! clippy` work on a checkout where Node.js never ran.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let dist = root.join("web").join("dist");
    // A directory here makes cargo rescan every file under it for changes,
    // so a rebuilt app is embedded again.
    println!("cargo:rerun-if-changed=web/dist");
    let folder = if dist.join("index.html").is_file() {
        dist
    } else {
        let out =
            PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web-placeholder");
        std::fs::create_dir_all(&out).expect("create the placeholder folder");
        std::fs::write(
            out.join("index.html"),
            "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>onair</title>\
             <body><h1>onair</h1><p>The web app was not built. Run <code>./scripts/run.sh</code> \
             (or <code>npm install &amp;&amp; npm run build</code> in <code>web/</code>) and rebuild.</p></body></html>\n",
        )
        .expect("write the placeholder page");
        out
    };
    println!("cargo:rustc-env=ONAIR_WEB_DIST={}", folder.display());
}
