//! Helpers shared by the integration tests that run the `tollgate` binary.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `tollgate ARGS` in `dir`, without colours.
pub fn tollgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The example GitOps repo of policies.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

/// A fresh temporary folder (unique per test binary and `name`) with `files`.
pub fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    let dir = std::env::temp_dir().join(format!(
        "tollgate-{}-{name}-{}",
        exe.unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    dir
}

/// Like [`folder`], with a copy of the example bases and tenants first.
pub fn folder_with_examples(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = folder(name, &[]);
    for sub in ["base", "tenants"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        for e in std::fs::read_dir(examples().join(sub)).expect("examples") {
            let e = e.expect("entry");
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).expect("copy");
        }
    }
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(p, body).expect("write");
    }
    dir
}
