//! Resolution of a campaign's `dataset` value to a dataset folder (IDX, CIFAR-10 or an
//! image folder).

use std::path::{Component, Path, PathBuf};

use super::{DataError, SPLIT_FILES, cifar, detect_format};

/// Dataset names the worker knows how to look for in its data folders.
pub const KNOWN_DATASETS: [&str; 4] = ["fashion-mnist", "mnist", "kmnist", "cifar-10"];

/// Where Debian's `dataset-*` packages install datasets (`dataset-fashion-mnist` puts its
/// files in `/usr/share/datasets/fashion-mnist/`).
pub const SYSTEM_DATASETS_DIR: &str = "/usr/share/datasets";

/// Finds the dataset folder a campaign's `dataset` value names.
///
/// An existing directory is used as it is (its format is detected when it is loaded).
/// Otherwise a name (`fashion-mnist`, `mnist`, `kmnist`, `cifar-10`, or any other single
/// folder name) is looked up as `<dir>/<name>/` in each of `data_dirs` in order (the
/// worker's `--data-dir`, then `./data`), then in `/usr/share/datasets/<name>`; the first
/// folder holding a dataset in a known layout wins (for `cifar-10`, `<dir>/cifar-10/` may
/// hold the archive's `cifar-10-batches-bin/`, and `<dir>/cifar-10-batches-bin/` is
/// also tried).
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
             a dataset folder (IDX files, CIFAR-10 batches or train/ and test/ image folders), \
             or use a known name ({})",
            KNOWN_DATASETS.join(", ")
        )));
    }
    let candidates: Vec<PathBuf> = data_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain([Path::new(SYSTEM_DATASETS_DIR)])
        .flat_map(|dir| {
            let archive = (name == "cifar-10").then(|| dir.join(cifar::ARCHIVE_DIR));
            std::iter::once(dir.join(name)).chain(archive)
        })
        .collect();
    if let Some(found) = candidates.iter().find(|dir| detect_format(dir).is_some()) {
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

/// Whether `dir` holds the four IDX files (each plain or gzipped).
pub(super) fn holds_split_files(dir: &Path) -> bool {
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
        "cifar-10" => {
            "download the CIFAR-10 binary version (cifar-10-binary.tar.gz, from \
             https://www.cs.toronto.edu/~kriz/cifar.html) and extract it into <dir>/cifar-10/ \
             in one of those folders (it holds cifar-10-batches-bin/)"
        }
        "mnist" | "kmnist" => {
            "download its four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, \
             t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into one of those folders"
        }
        _ => {
            "use a known name (fashion-mnist, mnist, kmnist, cifar-10) or the path of a \
             dataset folder: train-images-idx3-ubyte, train-labels-idx1-ubyte, \
             t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may be gzipped); \
             CIFAR-10's data_batch_N.bin and test_batch.bin; or train/<class>/ and \
             test/<class>/ folders of .png or .jpg images"
        }
    };
    format!(
        "dataset '{name}' not found: looked for a dataset folder in {}; {how_to_get}, or \
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

    #[test]
    fn missing_cifar_says_where_to_get_it() {
        let message = not_found_message("cifar-10", &[PathBuf::from("/a/cifar-10")]);
        assert!(message.contains("cifar-10-binary.tar.gz"), "{message}");
    }
}
