//! The sandbox's sites and landing roles: each site's rights, and the role model with its
//! sections (sites, knowledge bases, groups), answered with the documented quirks.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Answer, Portal, Role, Site, err, int, ok};

const SITE_OPS: [&str; 6] = ["denied", "read", "edit", "sett", "public", "delete"];
/// The landing `scope` values; without one, a method sees only sites and stores.
const LANDING_SCOPES: [&str; 3] = ["GROUP", "KNOWLEDGE", "MAINPAGE"];

/// The landing `scope` a call names, if it is one the portal knows.
fn landing_scope(p: &Value) -> Option<&str> {
    p["scope"].as_str().filter(|s| LANDING_SCOPES.contains(s))
}

/// A map keyed by site id the way PHP's `json_encode` sends it: keys exactly 0..n-1 make a
/// JSON list (a role with only the default answers `[["read"]]`), an empty map `[]`.
fn php_map(map: &BTreeMap<String, Vec<String>>) -> Value {
    let positional = map.keys().enumerate().all(|(i, k)| *k == i.to_string());
    if positional {
        Value::Array(map.values().map(|ops| json!(ops)).collect())
    } else {
        json!(map)
    }
}

fn role_mismatch() -> Answer {
    err(
        400,
        "ROLE_SCOPE_MISMATCH",
        "The role does not exist or belongs to another section",
    )
}

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn landing(&mut self, method: &str, p: &Value) -> Option<Answer> {
        Some(match method {
            "landing.site.getrights" => self.landing_site_getrights(p),
            "landing.site.setrights" => self.landing_site_setrights(p),
            "landing.role.isenabled" => self.landing_role_isenabled(),
            "landing.role.enable" => self.landing_role_enable(p),
            "landing.role.getlist" => self.landing_role_getlist(p),
            "landing.role.getrights" => self.landing_role_getrights(p),
            "landing.role.setrights" => self.landing_role_setrights(p),
            "landing.role.setaccesscodes" => self.landing_role_setaccesscodes(p),
            _ => return None,
        })
    }

    fn landing_site_getrights(&self, p: &Value) -> Answer {
        let Some(id) = int(&p["id"]) else {
            return err(
                400,
                "MISSING_PARAMS",
                "Not enough call parameters, missing: id",
            );
        };
        match self.sites.get(&id) {
            Some(site) if !site.in_trash && site.scope == landing_scope(p) => {
                ok(json!(self.site_rights_for(site, self.me)))
            }
            _ => ok(json!([])),
        }
    }

    fn landing_site_setrights(&mut self, p: &Value) -> Answer {
        let Some(id) = int(&p["id"]) else {
            return err(
                400,
                "MISSING_PARAMS",
                "Not enough call parameters, missing: id",
            );
        };
        let new: BTreeMap<String, Vec<String>> = p["rights"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(code, ops)| (code.clone(), Self::clean_ops(ops)))
            .collect();
        if self.role_model {
            // Documented: under the role model the portal answers true and applies nothing.
            return ok(json!(true));
        }
        if id == 0 {
            self.default_site_rights = new;
            return ok(json!(true));
        }
        let scope = landing_scope(p);
        match self.sites.get_mut(&id) {
            Some(site) if !site.in_trash && site.scope == scope => {
                site.rights = new;
                ok(json!(true))
            }
            _ => ok(json!(false)),
        }
    }

    fn landing_role_isenabled(&self) -> Answer {
        ok(json!(self.role_model))
    }

    fn landing_role_enable(&mut self, p: &Value) -> Answer {
        match int(&p["mode"]) {
            // With scope only a portal administrator may switch (landing-role-enable.md).
            Some(_) if landing_scope(p).is_some() && !self.users[&self.me].admin => err(
                400,
                "IS_NOT_ADMIN",
                "To perform this action, you must be an administrator.",
            ),
            Some(mode) => {
                self.role_model = mode == 1;
                ok(json!(true))
            }
            None => err(
                400,
                "MISSING_PARAMS",
                "Not enough parameters for the call, missing: mode",
            ),
        }
    }

    fn landing_role_getlist(&self, p: &Value) -> Answer {
        ok(Value::Array(
            self.roles
                .iter()
                .filter(|(_, r)| r.scope == landing_scope(p))
                .map(|(id, r)| {
                    let xml_id = if r.xml_id.is_empty() {
                        Value::Null
                    } else {
                        json!(r.xml_id)
                    };
                    json!({"ID": id.to_string(), "TITLE": r.title, "XML_ID": xml_id})
                })
                .collect(),
        ))
    }

    fn landing_role_getrights(&self, p: &Value) -> Answer {
        match self.role(p) {
            Some(role) => ok(php_map(&role.rights)),
            None => role_mismatch(),
        }
    }

    fn landing_role_setrights(&mut self, p: &Value) -> Answer {
        let Some(id) = int(&p["id"]) else {
            return err(
                400,
                "MISSING_PARAMS",
                "Not enough parameters for the call, missing: id",
            );
        };
        let Some(given) = p["rights"].as_object() else {
            return err(
                400,
                "MISSING_PARAMS",
                "Not enough parameters for the call, missing: rights",
            );
        };
        if self.role(p).is_none() {
            return role_mismatch();
        }
        let kept: BTreeMap<String, Vec<String>> = given
            .iter()
            .filter(|(site, _)| {
                *site == "0" || site.parse().is_ok_and(|s: u64| self.sites.contains_key(&s))
            })
            .map(|(site, ops)| (site.clone(), Self::clean_ops(ops)))
            .collect();
        // Extras of another section are not saved, without an error.
        let prefix = match landing_scope(p) {
            Some("KNOWLEDGE") => "knowledge_",
            Some("GROUP") => "group_",
            Some("MAINPAGE") => "vibe_",
            _ => "",
        };
        let additional: Option<Vec<String>> = p.get("additional").map(|a| {
            a.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter(|code| {
                    code.strip_prefix(prefix)
                        .is_some_and(|rest| ["menu24", "create"].contains(&rest))
                })
                .map(str::to_owned)
                .collect()
        });
        let role = self.roles.get_mut(&id).expect("checked above");
        role.rights = kept;
        if let Some(additional) = additional {
            role.additional = additional;
        }
        ok(json!(true))
    }

    fn landing_role_setaccesscodes(&mut self, p: &Value) -> Answer {
        let Some(id) = int(&p["id"]) else {
            return err(
                400,
                "MISSING_PARAMS",
                "Not enough call parameters, missing: id",
            );
        };
        if !p["codes"].is_array() && !p["codes"].is_null() {
            return err(400, "ERROR_ARGUMENT", "codes must be an array");
        }
        if self.role(p).is_none() {
            return role_mismatch();
        }
        if let Some(role) = self.roles.get_mut(&id) {
            role.codes = p["codes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect();
        }
        ok(json!(true))
    }

    /// The role a landing role call names, if it exists in the call's section.
    fn role(&self, p: &Value) -> Option<&Role> {
        int(&p["id"])
            .and_then(|id| self.roles.get(&id))
            .filter(|r| r.scope == landing_scope(p))
    }

    /// The rights `user` holds on `site`, the way landing.site.getRights reports them.
    fn site_rights_for(&self, site: &Site, user: u64) -> Vec<String> {
        let held = self.codes_of(user);
        let mut ops = BTreeSet::new();
        for (code, granted) in site.rights.iter().chain(&self.default_site_rights) {
            if held.contains(code) {
                ops.extend(granted.iter().cloned());
            }
        }
        SITE_OPS
            .iter()
            .filter(|op| ops.contains(**op))
            .map(|op| (*op).to_owned())
            .collect()
    }

    /// Applies setRights' documented rules to one code's operations.
    fn clean_ops(ops: &Value) -> Vec<String> {
        let given: BTreeSet<&str> = ops
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|op| SITE_OPS.contains(op)) // unknown operations are dropped silently
            .collect();
        if given.contains("denied") {
            return vec!["denied".into()];
        }
        let mut kept: Vec<String> = SITE_OPS
            .iter()
            .filter(|op| given.contains(**op))
            .map(|op| (*op).to_owned())
            .collect();
        if !kept.iter().any(|op| op == "read") {
            kept.insert(0, "read".into());
        }
        kept
    }
}
