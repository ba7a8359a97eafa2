//! Where the tests find what they run besides the code under test: the Python interpreter of the
//! tests' virtual environment and the Python scripts in `tests/py`.

use std::path::PathBuf;

/// Environment variable naming the Python virtual environment that `scripts/test.sh` fills.
pub const VENV_ENV: &str = "VOXPOP_VENV";
/// The virtual environment when [`VENV_ENV`] is not set.
pub const DEFAULT_VENV: &str = "/root/.cache/voxpop-venv";

/// The tests' virtual environment.
pub fn venv() -> PathBuf {
    std::env::var_os(VENV_ENV).map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from)
}

/// The Python interpreter of the tests' virtual environment (pyarrow, DuckDB, Playwright, ...).
pub fn python() -> PathBuf {
    venv().join("bin").join("python")
}

/// The `tests` package of the checkout being tested, found at run time
/// ([`voxpop_schema::source_file`]).
pub fn tests_dir() -> PathBuf {
    voxpop_schema::source_file("tests")
}

/// The directory of the tests' Python scripts (`tests/py`).
pub fn py_dir() -> PathBuf {
    tests_dir().join("py")
}

/// A Python script of the tests, e.g. `py_script("read_delta.py")`.
pub fn py_script(name: &str) -> PathBuf {
    py_dir().join(name)
}
