//! Resolution of a campaign's `dataset` value to a folder of IDX files.

use std::path::{Component, Path, PathBuf};

use super::{DataError, SPLIT_FILES};

/// Dataset names the worker knows how to look for in its data folders.
pub const KNOWN_DATASETS: [&str; 3] = ["fashion-mnist", "mnist", "kmnist"];

/// Where Debian's `dataset-*` packages install datasets (`dataset-fashion-mnist` puts its
/// files in `/usr/share/datasets/fashion-mnist/`).
pub const SYSTEM_DATASETS_DIR: &str = "/usr/share/datasets";

/// Finds the folder of IDX files a campaign's `dataset` value names.
///
/// An existing directory is used as it is. Otherwise a name (`fashion-mnist`, `mnist`,
/// `kmnist`, or any other single folder name) is looked up as `<dir>/<name>/` in each of
/// `data_dirs` in order (the worker's `--data-dir`, then `./data`), then in
/// `/usr/share/datasets/<name>`; the first folder holding the four standard files wins.
pub fn resolve_dataset(name: &str, data_dirs: &[PathBuf]) -> Result<PathBuf, DataError> {
    let as_path = Path::new(name);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let components: Vec<Component> = as_path.components().collect();
    let is_plain_name = matches!(components[..], [Component::Normal(_)]);
    if !is_plain_name {
        return Err(DataError::NotFound(format!(
            "dataset '{name}' is not an existing directory: point the campaign's dataset at \
             a folder of IDX files, or use a known name ({})",
            KNOWN_DATASETS.join(", ")
        )));
    }
    let candidates: Vec<PathBuf> = data_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(SYSTEM_DATASETS_DIR)])
        .map(|dir| dir.join(name))
        .collect();
    if let Some(found) = candidates.iter().find(|dir| holds_split_files(dir)) {
        return Ok(found.clone());
    }
    Err(DataError::NotFound(not_found_message(name, &candidates)))
}

/// The path of `base` or `base.gz` in `dir`, whichever exists (the plain file first).
pub fn find_split_file(dir: &Path, base: &str) -> Option<PathBuf> {
    [base.to_string(), format!("{base}.gz")]
        .into_iter()
        .map(|file| dir.join(file))
        .find(|path| path.is_file())
}

fn holds_split_files(dir: &Path) -> bool {
    SPLIT_FILES
        .iter()
        .all(|base| find_split_file(dir, base).is_some())
}

fn not_found_message(name: &str, candidates: &[PathBuf]) -> String {
    let searched: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    let how_to_get = match name {
        "fashion-mnist" => {
            "install it with `apt-get install dataset-fashion-mnist` (it goes to \
             /usr/share/datasets/fashion-mnist), or download the four .gz files from \
             https://github.com/zalandoresearch/fashion-mnist into one of those folders"
        }
        "mnist" | "kmnist" => {
            "download its four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
             t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into one of those folders"
        }
        _ => {
            "use a known name (fashion-mnist, mnist, kmnist) or the path of a folder holding \
             train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and \
             t10k-labels-idx1-ubyte (each may be gzipped)"
        }
    };
    format!(
        "dataset '{name}' not found: looked for its four IDX files in {}; {how_to_get}, or \
         pass --data-dir",
        searched.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fashion_mnist_suggests_apt() {
        let candidates = [PathBuf::from("/a/fashion-mnist")];
        let message = not_found_message("fashion-mnist", &candidates);
        assert!(
            message.contains("apt-get install dataset-fashion-mnist"),
            "{message}"
        );
        assert!(message.contains("/a/fashion-mnist"), "{message}");
    }
}
