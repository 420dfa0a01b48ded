//! Reads one catalog file. The build script reads every file of `tools/` with it, so a file
//! that does not parse, or is misnamed, fails the build naming the file; the unit tests use it
//! too.

use super::spec::ToolSpec;

/// The tool that `text`, the file `tools/<file>`, declares.
pub fn read(file: &str, text: &str) -> Result<ToolSpec, String> {
    let spec: ToolSpec = toml::from_str(text).map_err(|e| e.to_string())?;
    let expected = format!("{}.toml", spec.method);
    if file != expected {
        return Err(format!(
            "the file for {} must be named {expected}",
            spec.method
        ));
    }
    Ok(spec)
}
