//! The collector's data directory: created on first start with a `.gitignore` holding `*`
//! (as cargo does for `target/`), so the default `roentgen-data/` made inside a checkout never
//! shows up in `git status`.

use std::io::Write;
use std::path::Path;

/// What the `.gitignore` of a created data directory holds.
const GITIGNORE: &str = "# Created by roentgen-web: this directory holds collector data.\n*\n";

/// Creates `dir` (and its parents) if it does not exist, and then writes `.gitignore` into it;
/// a directory that exists is left as it is, and an existing `.gitignore` is never replaced.
pub fn create(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(".gitignore"))
    {
        Ok(mut file) => file.write_all(GITIGNORE.as_bytes()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_directory_ignores_everything_in_it() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/roentgen-data");
        create(&dir).unwrap();
        let ignore = std::fs::read_to_string(dir.join(".gitignore")).unwrap();
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        // A second start changes nothing.
        create(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            ignore
        );
    }

    #[test]
    fn an_existing_directory_and_its_gitignore_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        create(&dir).unwrap();
        assert!(!dir.join(".gitignore").exists());
        std::fs::write(dir.join(".gitignore"), "mine\n").unwrap();
        create(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "mine\n"
        );
    }
}
