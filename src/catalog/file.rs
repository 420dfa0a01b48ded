//! Reads one catalog file. The build script reads every file of `tools/` with it, so a file
//! that does not parse, is misnamed, or has a schema the server's checker cannot enforce,
//! fails the build naming the file; the unit tests use it too.

use super::{checker::Checker, spec::ToolSpec};

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
    // The server checks values with its own checker, which knows only the keywords the
    // catalog uses: a schema it cannot enforce fails here, not at a call.
    for (which, schema) in [
        ("input_schema", &spec.input_schema),
        ("output_schema", &spec.output_schema),
    ] {
        Checker::compile_now(schema).map_err(|err| format!("{which}: {err}"))?;
    }
    Ok(spec)
}
