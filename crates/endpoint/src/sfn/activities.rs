//! Activities are only names with a queue: creating one twice with the same
//! name returns the first, as AWS does, and deleting one wakes its waiting
//! polls so they can answer ActivityDoesNotExist instead of waiting out
//! their long poll.

use super::{ActivityRec, Shared, activity_missing, check_name, now, page};
use crate::error::ApiError;
use crate::requests::parse;
use crate::sfn::requests;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

impl Shared {
    pub(crate) fn create_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::CreateActivity = parse(req)?;
        let name = r.name.as_str();
        check_name(name, "activity")?;
        let arn = self.arn("activity", name);
        let mut m = self.lock();
        let created = m
            .activities
            .entry(arn.clone())
            .or_insert_with(|| {
                tracing::info!(target: "wasm_activity::endpoint", %arn, "activity created");
                ActivityRec {
                    name: name.to_string(),
                    created: now(),
                    queue: VecDeque::new(),
                    notify: Arc::new(Notify::new()),
                    waiting: 0,
                }
            })
            .created;
        Ok(json!({ "activityArn": arn, "creationDate": created }))
    }

    pub(crate) fn describe_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ActivityArn = parse(req)?;
        let arn = r.activity_arn.as_str();
        self.check_arn(arn, "activity")?;
        let m = self.lock();
        let a = m.activities.get(arn).ok_or_else(|| activity_missing(arn))?;
        Ok(json!({ "activityArn": arn, "name": a.name, "creationDate": a.created }))
    }

    pub(crate) fn list_activities(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ListPage = parse(req)?;
        let m = self.lock();
        let all: Vec<Value> = m
            .activities
            .iter()
            .map(
                |(arn, a)| json!({ "activityArn": arn, "name": a.name, "creationDate": a.created }),
            )
            .collect();
        page(all, r.max_results, r.next_token.as_deref(), "activities")
    }

    pub(crate) fn delete_activity(&self, req: &Value) -> Result<Value, ApiError> {
        let r: requests::ActivityArn = parse(req)?;
        let arn = r.activity_arn.as_str();
        self.check_arn(arn, "activity")?;
        if let Some(a) = self.lock().activities.remove(arn) {
            a.notify.notify_waiters();
        }
        Ok(json!({}))
    }
}
