//! The request's variables against the types its operation declares, before anything runs.
//!
//! async-graphql checks a variable's value where an argument uses it (while validating),
//! but finds a missing required variable only when its field runs: one mistake answered
//! GRAPHQL_VALIDATION_FAILED, the other BAD_USER_INPUT with `data: null`. Coercing variables
//! is a step of its own in the GraphQL spec (CoerceVariableValues), and its failures are
//! request errors: here both are BAD_USER_INPUT, no `data`, `field` naming the variable.

use async_graphql::{
    ErrorExtensionValues, ServerError, ServerResult, Value, Variables,
    parser::types::ExecutableDocument,
    registry::{MetaType, MetaTypeName, Registry},
};

use crate::error::ErrorCode;

/// Refuses the first variable of the operation that is missing while required, or whose
/// value does not fit its declared type.
pub(crate) fn check(
    registry: &Registry,
    doc: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) -> ServerResult<()> {
    let Some(op) = crate::limits::operation(doc, operation_name) else {
        return Ok(());
    };
    for def in &op.variable_definitions {
        let def = &def.node;
        let name = def.name.node.as_str();
        let ty = def.var_type.node.to_string();
        let problem = match variables.get(name) {
            None if def.default_value.is_none() && !def.var_type.node.nullable => Some(format!(
                "Variable \"${name}\" of required type \"{ty}\" was not provided"
            )),
            None => None,
            Some(value) => invalid(registry, &ty, value)
                .map(|why| format!("Variable \"${name}\" got an invalid value: {why}")),
        };
        if let Some(message) = problem {
            let mut err = ServerError::new(message, Some(def.name.pos));
            let mut ext = ErrorExtensionValues::default();
            ext.set("code", ErrorCode::BadUserInput.as_str());
            ext.set("field", format!("${name}"));
            err.extensions = Some(ext);
            return Err(err);
        }
    }
    Ok(())
}

/// Why `value` does not fit the type named `ty` (`[ID!]!` and the like), if it does not.
/// Input coercion as the spec has it: a single value where a list is expected is a list of
/// one; enums come as strings in JSON variables. Types the schema does not know are left
/// to validation, which names them.
fn invalid(registry: &Registry, ty: &str, value: &Value) -> Option<String> {
    match MetaTypeName::create(ty) {
        MetaTypeName::NonNull(inner) => match value {
            Value::Null => Some(format!("null where \"{ty}\" is required")),
            _ => invalid(registry, inner, value),
        },
        MetaTypeName::List(inner) => match value {
            Value::Null => None,
            Value::List(items) => items.iter().find_map(|item| invalid(registry, inner, item)),
            single => invalid(registry, inner, single),
        },
        MetaTypeName::Named(name) => {
            if let Value::Null = value {
                return None;
            }
            match registry.types.get(name)? {
                MetaType::Scalar {
                    is_valid: Some(is_valid),
                    ..
                } => (!is_valid(value)).then(|| format!("expected type \"{name}\"")),
                MetaType::Enum { enum_values, .. } => {
                    let given = match value {
                        Value::String(v) => Some(v.as_str()),
                        Value::Enum(v) => Some(v.as_str()),
                        _ => None,
                    };
                    match given {
                        Some(v) if enum_values.contains_key(v) => None,
                        _ => Some(format!("expected a value of the enum \"{name}\"")),
                    }
                }
                MetaType::InputObject {
                    input_fields, oneof, ..
                } => {
                    let Value::Object(fields) = value else {
                        return Some(format!("expected an object of type \"{name}\""));
                    };
                    if *oneof && (fields.len() != 1 || fields.values().any(|v| *v == Value::Null)) {
                        return Some(format!("\"{name}\" takes exactly one field, not null"));
                    }
                    if let Some(unknown) = fields.keys().find(|k| !input_fields.contains_key(k.as_str())) {
                        return Some(format!("\"{name}\" has no field \"{unknown}\""));
                    }
                    input_fields
                        .values()
                        .find_map(|field| match fields.get(field.name.as_str()) {
                            Some(v) => {
                                invalid(registry, &field.ty, v).map(|why| format!("{}: {why}", field.name))
                            }
                            None if MetaTypeName::create(&field.ty).is_non_null()
                                && field.default_value.is_none() =>
                            {
                                Some(format!("field \"{}\" of \"{name}\" is required", field.name))
                            }
                            None => None,
                        })
                }
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::Request;

    /// The request-level error a request gets before anything runs, if any: (code, message).
    fn refused(query: &str, variables: serde_json::Value) -> Option<(String, String)> {
        let schema = crate::graphql::builder()
            .extension(crate::graphql::edge::Edge::with_limits(Default::default()))
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let request = Request::new(query).variables(async_graphql::Variables::from_json(variables));
        let response = runtime.block_on(schema.execute(request));
        let err = response.errors.into_iter().find(|e| e.path.is_empty())?;
        let code = err.extensions.as_ref()?.get("code")?.to_string();
        Some((code.trim_matches('"').to_owned(), err.message))
    }

    fn bad_input(query: &str, variables: serde_json::Value) -> String {
        match refused(query, variables) {
            Some((code, message)) if code == "BAD_USER_INPUT" => message,
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn missing_and_mistyped_variables_are_both_bad_user_input() {
        let q =
            "query($s: ID!, $n: Int) { schedule(id: $s) { id } concerts(first: $n) { edges { cursor } } }";
        assert!(
            bad_input(q, serde_json::json!({})).contains("\"$s\" of required type \"ID!\" was not provided")
        );
        assert!(bad_input(q, serde_json::json!({ "s": null })).contains("$s"));
        assert!(bad_input(q, serde_json::json!({ "s": "1", "n": "many" })).contains("$n"));
        assert!(bad_input(q, serde_json::json!({ "s": "1", "n": 1.5 })).contains("$n"));
        // Values that fit get past this step (and fail later, for want of a database).
        assert_eq!(
            refused(q, serde_json::json!({ "s": 1, "n": 5 })),
            None,
            "an ID may be an integer"
        );
    }

    #[test]
    fn input_objects_lists_and_enums_are_coerced_as_the_spec_says() {
        let q = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }";
        let ok = serde_json::json!({ "i": { "email": "a@b.c", "password": "p", "displayName": "d" } });
        assert_eq!(refused(q, ok), None);
        bad_input(q, serde_json::json!({ "i": { "email": "a@b.c" } }));
        let extra = serde_json::json!({ "i": { "email": "a@b.c", "password": "p", "displayName": "d", "admin": true } });
        assert!(bad_input(q, extra).contains("admin"));
        let q = "mutation($u: ID!, $r: Role!) { setUserRole(userId: $u, role: $r) { id } }";
        assert_eq!(refused(q, serde_json::json!({ "u": "1", "r": "HOST" })), None);
        bad_input(q, serde_json::json!({ "u": "1", "r": "KING" }));
    }
}
