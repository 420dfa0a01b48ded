//! The sandbox's REST 3.0 methods: the company structure (`humanresources.node.*`) and the
//! portal's event log, answered only on the `/rest/api/` path, with REST 3.0's envelope:
//! `result.item` / `result.items`, no `total`/`next`, and errors as an object.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Answer, Portal, ok};

const NODE_FIELDS: [&str; 13] = [
    "id",
    "name",
    "type",
    "structureId",
    "parentId",
    "description",
    "accessCode",
    "userCount",
    "colorName",
    "xmlId",
    "createdAt",
    "updatedAt",
    "members",
];

const LOG_FIELDS: [&str; 13] = [
    "id",
    "timestampX",
    "severity",
    "auditTypeId",
    "moduleId",
    "itemId",
    "remoteAddr",
    "userAgent",
    "requestUri",
    "siteId",
    "userId",
    "guestId",
    "description",
];

/// The event log: id, time, type, user. Invented, in the documented shape.
const LOG: &[(u64, &str, &str, u64)] = &[
    (990, "2026-11-19T08:02:44+00:00", "USER_AUTHORIZE", 503),
    (998, "2026-11-19T17:40:11+00:00", "USER_LOGOUT", 7),
    (1001, "2026-11-20T08:55:17+00:00", "USER_AUTHORIZE", 1),
    (1002, "2026-11-20T09:14:03+00:00", "USER_AUTHORIZE", 7),
    (
        1005,
        "2026-11-20T09:30:40+00:00",
        "USER_PASSWORD_CHANGED",
        547,
    ),
];

/// A REST 3.0 error: `{"error": {"code", "message"[, "validation"]}}`.
pub(super) fn v3_err(status: u16, name: &str, message: &str) -> Answer {
    (
        status,
        json!({"error": {"code": format!("BITRIX_REST_V3_EXCEPTION_{name}"), "message": message}}),
    )
}

fn invalid(field: &str, message: &str) -> Answer {
    (
        400,
        json!({"error": {
            "code": "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION",
            "message": "Error validating request object",
            "validation": [{"message": message, "field": field}],
        }}),
    )
}

/// Only the `select`ed fields of `item`, or all of them without `select`; an unknown name is
/// refused, as the node pages document.
fn selected(item: Value, p: &Value, known: &[&str], dto: &str) -> Result<Value, Answer> {
    let Some(select) = p.get("select") else {
        return Ok(item);
    };
    let Some(names) = select.as_array() else {
        return Err(v3_err(
            400,
            "INVALIDSELECTEXCEPTION",
            &format!("Cannot recognize select expression `{select}`"),
        ));
    };
    let mut out = serde_json::Map::new();
    for name in names.iter().map(|n| n.as_str().unwrap_or_default()) {
        if !known.contains(&name) {
            return Err(v3_err(
                400,
                "UNKNOWNDTOPROPERTYEXCEPTION",
                &format!("Unknown field `{name}` for entity `{dto}`"),
            ));
        }
        if let Some(v) = item.get(name) {
            out.insert(name.to_owned(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

/// The page `pagination` asks for, from `items`: numbers only, and a limit of at least 1.
fn paged(items: Vec<Value>, p: &Value, max_limit: u64) -> Result<Vec<Value>, Answer> {
    let Some(pagination) = p.get("pagination") else {
        return Ok(items.into_iter().take(50).collect());
    };
    let bad = || {
        v3_err(
            400,
            "INVALIDPAGINATIONEXCEPTION",
            &format!("Cannot recognize pagination parameter `{pagination}`"),
        )
    };
    let number = |k: &str| match pagination.get(k) {
        None => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(bad),
    };
    let limit = number("limit")?.unwrap_or(50);
    if limit == 0 {
        return Err(bad());
    }
    let limit = limit.min(max_limit);
    let offset = match (number("page")?, number("offset")?) {
        (Some(page), _) => page.saturating_sub(1) * limit,
        (None, Some(offset)) => offset,
        (None, None) => 0,
    };
    Ok(items
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect())
}

/// Whether `entry` passes one REST 3.0 filter condition, `[field, value]` or
/// `[field, op, value]`, or an `{"logic": "or", "conditions": [...]}` group.
fn passes(entry: &Value, condition: &Value) -> Result<bool, Answer> {
    if let Some(conditions) = condition.get("conditions").and_then(Value::as_array) {
        for c in conditions {
            if passes(entry, c)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let parts = condition.as_array().map(Vec::as_slice).unwrap_or_default();
    let (field, op, want) = match parts {
        [f, v] => (f, "=", v),
        [f, op, v] => (f, op.as_str().unwrap_or_default(), v),
        _ => return Err(invalid("filter", "Cannot recognize filter condition")),
    };
    let field = field.as_str().unwrap_or_default();
    if !LOG_FIELDS.contains(&field) {
        return Err(v3_err(
            400,
            "UNKNOWNDTOPROPERTYEXCEPTION",
            &format!("Unknown field `{field}` for entity `EventLogDto`"),
        ));
    }
    let have = &entry[field];
    let cmp = |w: &Value| match (have, w) {
        (Value::Number(a), b) => b
            .as_f64()
            .or_else(|| b.as_str().and_then(|s| s.parse().ok()))
            .and_then(|b| a.as_f64()?.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::String(a), b) => Some(a.as_str().cmp(b.to_string().as_str())),
        _ => None,
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        "=" => cmp(want) == Some(Equal),
        "!=" => cmp(want) != Some(Equal),
        ">" => cmp(want) == Some(Greater),
        ">=" => matches!(cmp(want), Some(Greater | Equal)),
        "<" => cmp(want) == Some(Less),
        "<=" => matches!(cmp(want), Some(Less | Equal)),
        "in" => want
            .as_array()
            .is_some_and(|ws| ws.iter().any(|w| cmp(w) == Some(Equal))),
        "between" => match want.as_array().map(Vec::as_slice) {
            Some([from, to]) => {
                matches!(cmp(from), Some(Greater | Equal)) && matches!(cmp(to), Some(Less | Equal))
            }
            _ => false,
        },
        other => {
            return Err(v3_err(
                400,
                "UNKNOWNFILTEROPERATOREXCEPTION",
                &format!("Unknown filter operator `{other}`"),
            ));
        }
    })
}

impl Portal {
    /// Answers the REST 3.0 methods of this area; `None` for any other method.
    pub(super) fn structure(&self, method: &str, p: &Value) -> Option<Answer> {
        let answer = match method {
            "humanresources.node.list" => self.node_list(p),
            "humanresources.node.get" => self.node_get(p),
            // Administrators only on a real portal; the sandbox shows its webhook user the log
            // anyway, so the tool can be tried without a portal.
            "main.eventlog.list" => event_log(p),
            _ => return None,
        };
        Some(answer.unwrap_or_else(|refused| refused))
    }

    /// Each department's people, in one pass over the users: the large company has ten
    /// thousand of them, and a node list names every department.
    fn people_by_department(&self) -> BTreeMap<u64, Vec<u64>> {
        let mut by = BTreeMap::<u64, Vec<u64>>::new();
        for (uid, u) in &self.users {
            by.entry(u.department).or_default().push(*uid);
        }
        by
    }

    fn node(&self, id: u64, people: &[u64]) -> Value {
        let dep = &self.departments[&id];
        let members: Vec<Value> = people
            .iter()
            .map(|uid| {
                let u = &self.users[uid];
                let role = if *uid == dep.head {
                    "MEMBER_HEAD"
                } else {
                    "MEMBER_EMPLOYEE"
                };
                json!({"userId": uid, "name": format!("{} {}", u.name, u.last_name),
                       "workPosition": "", "role": role, "avatar": "",
                       "url": format!("/company/personal/user/{uid}/")})
            })
            .collect();
        json!({"id": id, "name": dep.name, "type": "DEPARTMENT", "structureId": 1,
               "parentId": dep.parent, "description": "", "accessCode": format!("DR{id}"),
               "userCount": people.len(), "colorName": null, "xmlId": null,
               "createdAt": "2026-01-12T09:00:00+00:00", "updatedAt": "2026-01-12T09:00:00+00:00",
               "members": members})
    }

    fn node_list(&self, p: &Value) -> Result<Answer, Answer> {
        let items = match p.get("type").and_then(Value::as_str) {
            None => return Err(invalid("type", "Required field `type` is not specified")),
            Some("DEPARTMENT") => {
                let people = self.people_by_department();
                self.departments
                    .keys()
                    .map(|id| {
                        let here = people.get(id).map_or(&[][..], Vec::as_slice);
                        let mut node = self.node(*id, here);
                        // Members come only with humanresources.node.get.
                        node.as_object_mut().map(|n| n.remove("members"));
                        selected(node, p, &NODE_FIELDS[..12], "NodeDto")
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            // The sandbox company has no teams.
            Some("TEAM") => Vec::new(),
            Some(_) => {
                return Err(invalid(
                    "type",
                    "An invalid value for the structure element type was provided",
                ));
            }
        };
        Ok(ok(json!({"items": paged(items, p, 200)?})))
    }

    fn node_get(&self, p: &Value) -> Result<Answer, Answer> {
        let id = match p.get("id") {
            None => return Err(invalid("id", "Required field `id` is not specified")),
            // REST 3.0 checks types: a digit string is not an integer.
            Some(v) => v
                .as_u64()
                .ok_or_else(|| invalid("id", "A string instead of a number"))?,
        };
        if !self.departments.contains_key(&id) {
            return Err(v3_err(
                400,
                "ENTITYNOTFOUNDEXCEPTION",
                &format!("Record with ID = `{id}` not found"),
            ));
        }
        let people: Vec<u64> = self
            .users
            .iter()
            .filter(|(_, u)| u.department == id)
            .map(|(uid, _)| *uid)
            .collect();
        let node = selected(self.node(id, &people), p, &NODE_FIELDS, "NodeDto")?;
        Ok(ok(json!({ "item": node })))
    }
}

fn event_log(p: &Value) -> Result<Answer, Answer> {
    let mut entries: Vec<Value> = LOG
        .iter()
        .map(|(id, at, kind, user)| {
            json!({"id": id, "timestampX": at, "severity": "SECURITY", "auditTypeId": kind,
                   "moduleId": "main", "itemId": user.to_string(), "remoteAddr": "203.0.113.7",
                   "userAgent": "Mozilla/5.0", "requestUri": "/auth/", "siteId": "s1",
                   "userId": user, "guestId": 0,
                   "description": format!("{{\"userId\":{user},\"method\":\"external\"}}")})
        })
        .collect();
    let mut kept = Vec::new();
    for entry in entries.drain(..) {
        let mut all = true;
        for condition in p["filter"].as_array().into_iter().flatten() {
            all &= passes(&entry, condition)?;
        }
        if all {
            kept.push(entry);
        }
    }
    if let Some(order) = p.get("order").and_then(Value::as_object) {
        for (field, direction) in order {
            if !LOG_FIELDS.contains(&field.as_str()) {
                return Err(v3_err(
                    400,
                    "UNKNOWNDTOPROPERTYEXCEPTION",
                    &format!("Unknown field `{field}` for entity `EventLogDto`"),
                ));
            }
            kept.sort_by(|a, b| match (a[field].as_f64(), b[field].as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a[field].to_string().cmp(&b[field].to_string()),
            });
            if direction
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case("DESC"))
            {
                kept.reverse();
            }
        }
    }
    let items = kept
        .into_iter()
        .map(|e| selected(e, p, &LOG_FIELDS, "EventLogDto"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ok(json!({"items": paged(items, p, 50)?})))
}
