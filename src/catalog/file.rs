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
    check_question(&spec)?;
    Ok(spec)
}

/// A write is put to a person field by field: every argument it can send needs a label, and
/// every placeholder of its effects a field.
fn check_question(spec: &ToolSpec) -> Result<(), String> {
    if spec.hints.read_only {
        return match spec.question {
            Some(_) => Err("[question] is for write tools only".to_owned()),
            None => Ok(()),
        };
    }
    let Some(question) = &spec.question else {
        return Err("a write tool needs a [question] with a label for each argument".to_owned());
    };
    let properties = spec.input_schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .filter(|name| *name != "dry_run");
    for name in properties {
        if !question.fields.contains_key(name) {
            return Err(format!(
                "[question.fields.{name}] is missing: the person must see every argument sent"
            ));
        }
    }
    for effect in &question.effects {
        for placeholder in effect.split('{').skip(1) {
            let field = placeholder.split('}').next().unwrap_or_default();
            let field = field.strip_suffix(".id").unwrap_or(field);
            if !question.fields.contains_key(field) {
                return Err(format!(
                    "[question] effect names {{{field}}}, which is not a field"
                ));
            }
        }
    }
    Ok(())
}
