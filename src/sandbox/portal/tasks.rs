//! The sandbox's tasks: which actions each user may take on a task they can see.

use serde_json::{Map, Value, json};

use super::{Answer, Portal, Task, err, int, ok};

const TASK_ACTIONS: [&str; 25] = [
    "ACCEPT",
    "DECLINE",
    "COMPLETE",
    "APPROVE",
    "DISAPPROVE",
    "START",
    "PAUSE",
    "DELEGATE",
    "REMOVE",
    "EDIT",
    "DEFER",
    "RENEW",
    "CREATE",
    "CHANGE_DEADLINE",
    "CHECKLIST_ADD_ITEMS",
    "ADD_FAVORITE",
    "DELETE_FAVORITE",
    "RATE",
    "TAKE",
    "EDIT.ORIGINATOR",
    "ELAPSEDTIME.ADD",
    // The new spellings come back next to the old ones (tasks-task-get-access.md).
    "EDIT.PLAN",
    "CHECKLIST.ADD",
    "FAVORITE.ADD",
    "FAVORITE.DELETE",
];

impl Portal {
    /// Answers the methods of this area; `None` for any other method.
    pub(super) fn tasks(&self, method: &str, p: &Value) -> Option<Answer> {
        Some(match method {
            "tasks.task.getaccess" => self.tasks_task_getaccess(p),
            _ => return None,
        })
    }

    fn tasks_task_getaccess(&self, p: &Value) -> Answer {
        if p["taskId"].is_null() {
            return err(
                400,
                "100",
                "CTaskItem All parameters in the constructor must have real class type",
            );
        }
        // Code 0 is about the taskId's type; a task that is missing or hidden is no error.
        let Some(task_id) = int(&p["taskId"]) else {
            return err(400, "0", "wrong task id");
        };
        let Some(task) = self
            .tasks
            .get(&task_id)
            .filter(|t| t.visible_to.contains(&self.me) || self.users[&self.me].admin)
        else {
            return ok(json!({"allowedActions": []}));
        };
        let users: Vec<u64> = match &p["users"] {
            Value::Null => vec![self.me],
            Value::Array(items) => items.iter().filter_map(int).collect(),
            _ => {
                return err(
                    400,
                    "100",
                    "Invalid value {} to match with parameter {users}. Should be value of type array.",
                );
            }
        };
        let actions: Map<String, Value> = users
            .iter()
            .map(|u| (u.to_string(), self.task_actions(task, *u)))
            .collect();
        ok(json!({"allowedActions": actions}))
    }

    fn task_actions(&self, task: &Task, user: u64) -> Value {
        let known = self.users.contains_key(&user);
        let admin = self.users.get(&user).is_some_and(|u| u.admin);
        let creator = known && (task.creator == user || admin);
        let responsible = known && task.responsible == user;
        let sees = known && (task.visible_to.contains(&user) || admin);
        let actions: Map<String, Value> = TASK_ACTIONS
            .iter()
            .map(|action| {
                let allowed = match *action {
                    "ACCEPT" | "DECLINE" => false,
                    "EDIT" | "REMOVE" | "CHANGE_DEADLINE" | "DELEGATE" | "EDIT.ORIGINATOR"
                    | "APPROVE" | "DISAPPROVE" => creator,
                    "COMPLETE" | "START" | "PAUSE" | "DEFER" | "RENEW" | "TAKE" => {
                        creator || responsible
                    }
                    "CREATE" => known,
                    _ => sees,
                };
                ((*action).to_owned(), Value::Bool(allowed))
            })
            .collect();
        Value::Object(actions)
    }
}
