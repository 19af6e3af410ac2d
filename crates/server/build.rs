//! Builds the web UI (`web/`, TypeScript bundled by esbuild) and generates
//! `web_assets.rs`, which embeds it with `include_bytes!`, so the release
//! binary is still one file.
//!
//! - Release builds run `npm ci` (when `node_modules` is missing or older
//!   than `package-lock.json`) and `node build.mjs` into `OUT_DIR`.
//! - Other builds embed `web/dist` when it exists (made by `npm run build`
//!   in `web/`) and never run npm, so tests do not need Node.js; without it
//!   the server answers `/` with a short "UI not built" page.
//! - `MINUTELY_WEB=build` builds like a release, `MINUTELY_WEB=skip` embeds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let web = manifest.join("../../web");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=MINUTELY_WEB");
    // The whole directory: sources, package files and a new `dist`.
    println!("cargo:rerun-if-changed={}", web.display());
    let mode = std::env::var("MINUTELY_WEB").unwrap_or_default();
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let dir = match mode.as_str() {
        "skip" => None,
        "build" => build(&web, &out),
        _ if release => build(&web, &out),
        _ => Some(web.join("dist")).filter(|d| d.join("index.html").is_file()),
    };
    let mut code = String::from("pub static ASSETS: &[(&str, &str, &[u8])] = &[\n");
    if let Some(dir) = dir {
        for (name, ctype) in [
            ("index.html", "text/html; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("style.css", "text/css; charset=utf-8"),
        ] {
            let path = dir.join(name);
            if path.is_file() {
                code.push_str(&format!(
                    "    (\"/{name}\", \"{ctype}\", include_bytes!({:?})),\n",
                    path.canonicalize().unwrap()
                ));
            }
        }
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).unwrap();
}

/// Runs npm; on failure warns and embeds nothing (the API still works).
fn build(web: &Path, out: &Path) -> Option<PathBuf> {
    let dest = out.join("web");
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules/.package-lock.json");
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(l), Some(i)) => l > i,
        _ => true,
    };
    let steps: Vec<(&str, Vec<&str>)> = {
        let mut s = Vec::new();
        if stale {
            s.push(("npm", vec!["ci", "--no-audit", "--no-fund"]));
        }
        s.push((
            "node",
            vec!["build.mjs", "--outdir", dest.to_str().unwrap()],
        ));
        s
    };
    for (program, args) in steps {
        match Command::new(program).args(&args).current_dir(web).status() {
            Ok(s) if s.success() => {}
            Ok(s) => {
                println!("cargo:warning=web UI not built: `{program} {}` in web/ failed ({s}); the server will serve the API only", args.join(" "));
                return None;
            }
            Err(e) => {
                println!("cargo:warning=web UI not built: cannot run {program} ({e}); install Node.js 18+ and npm, then build again");
                return None;
            }
        }
    }
    Some(dest)
}

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}
