//! Domains and types: what must exist before a workflow can start or an
//! activity be scheduled. Deprecation is modelled because deciders see it
//! (ScheduleActivityTaskFailed with ACTIVITY_TYPE_DEPRECATED), not for its
//! own sake.

use super::{ActivityTypeRec, Domain, SwfState, WorkflowTypeRec, unknown};
use crate::error::ApiError;
use crate::requests::parse;
use crate::support::now;
use crate::swf::requests;
use serde_json::{Value, json};

fn unknown_activity_type(key: &(String, String)) -> ApiError {
    unknown(format!(
        "Unknown type: ActivityType=[name={}, version={}]",
        key.0, key.1
    ))
}

fn type_exists(kind: &str, key: &(String, String)) -> ApiError {
    ApiError::bad_request(
        "TypeAlreadyExistsFault",
        format!(
            "{kind}=[name={}, version={}] is already registered",
            key.0, key.1
        ),
    )
}

impl SwfState {
    pub(super) fn register_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterDomain = parse(r)?;
        let mut m = self.lock();
        if m.domains.contains_key(&r.name) {
            return Err(ApiError::bad_request("DomainAlreadyExistsFault", r.name));
        }
        let domain = Domain {
            description: r.description,
            retention_days: r.workflow_execution_retention_period_in_days,
            ..Domain::default()
        };
        m.domains.insert(r.name, domain);
        Ok(json!({}))
    }

    pub(super) fn describe_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DomainName = parse(r)?;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.name)?;
        let status = if d.deprecated {
            "DEPRECATED"
        } else {
            "REGISTERED"
        };
        let mut info = json!({ "name": r.name, "status": status });
        if let Some(description) = &d.description {
            info["description"] = json!(description);
        }
        Ok(json!({
            "domainInfo": info,
            "configuration": { "workflowExecutionRetentionPeriodInDays": d.retention_days },
        }))
    }

    pub(super) fn register_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterActivityType = parse(r)?;
        let key = (r.name.clone(), r.version.clone());
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        if d.activity_types.contains_key(&key) {
            return Err(type_exists("ActivityType", &key));
        }
        let mut config = json!({});
        for (field, value) in [
            (
                "defaultTaskHeartbeatTimeout",
                &r.default_task_heartbeat_timeout,
            ),
            (
                "defaultTaskStartToCloseTimeout",
                &r.default_task_start_to_close_timeout,
            ),
            (
                "defaultTaskScheduleToStartTimeout",
                &r.default_task_schedule_to_start_timeout,
            ),
            (
                "defaultTaskScheduleToCloseTimeout",
                &r.default_task_schedule_to_close_timeout,
            ),
        ] {
            if let Some(v) = value {
                config[field] = json!(v);
            }
        }
        if let Some(list) = &r.default_task_list {
            config["defaultTaskList"] = json!({ "name": list.name });
        }
        if let Some(priority) = &r.default_task_priority {
            config["defaultTaskPriority"] = json!(priority);
        }
        d.activity_types.insert(
            key,
            ActivityTypeRec {
                created: now(),
                config,
                deprecated: None,
            },
        );
        Ok(json!({}))
    }

    /// Runs `f` on the activity type a DescribeActivityType or
    /// DeprecateActivityType request names.
    fn with_activity_type(
        &self,
        r: &Value,
        f: impl FnOnce((String, String), &mut ActivityTypeRec) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        let r: requests::ActivityTypeRef = parse(r)?;
        let key = r.activity_type.key();
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        let t = d
            .activity_types
            .get_mut(&key)
            .ok_or_else(|| unknown_activity_type(&key))?;
        f(key, t)
    }

    pub(super) fn describe_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        self.with_activity_type(r, |key, t| {
        let mut info = json!({ "activityType": { "name": key.0, "version": key.1 }, "status": "REGISTERED", "creationDate": t.created });
        if let Some(at) = t.deprecated {
            info["status"] = json!("DEPRECATED");
            info["deprecationDate"] = json!(at);
        }
        Ok(json!({ "typeInfo": info, "configuration": t.config }))
        })
    }

    /// New executions and types cannot be created in a deprecated domain.
    pub(super) fn not_deprecated(d: &Domain, name: &str) -> Result<(), ApiError> {
        if d.deprecated {
            return Err(ApiError::bad_request(
                "OperationNotPermittedFault",
                format!("domain {name} is deprecated"),
            ));
        }
        Ok(())
    }

    pub(super) fn deprecate_domain(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::DomainName = parse(r)?;
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.name)?;
        if d.deprecated {
            return Err(ApiError::bad_request(
                "DomainDeprecatedFault",
                format!("domain {} is already deprecated", r.name),
            ));
        }
        d.deprecated = true;
        Ok(json!({}))
    }

    pub(super) fn deprecate_activity_type(&self, r: &Value) -> Result<Value, ApiError> {
        self.with_activity_type(r, |key, t| {
            if t.deprecated.is_some() {
                return Err(ApiError::bad_request(
                    "TypeDeprecatedFault",
                    format!("ActivityType=[name={}, version={}]", key.0, key.1),
                ));
            }
            t.deprecated = Some(now());
            Ok(json!({}))
        })
    }

    pub(super) fn register_workflow_type(&self, r: &Value) -> Result<Value, ApiError> {
        let r: requests::RegisterWorkflowType = parse(r)?;
        let key = (r.name, r.version);
        let mut m = self.lock();
        let d = Self::domain(&mut m, &r.domain)?;
        Self::not_deprecated(d, &r.domain)?;
        if d.workflow_types.contains_key(&key) {
            return Err(type_exists("WorkflowType", &key));
        }
        d.workflow_types.insert(
            key,
            WorkflowTypeRec {
                default_task_list: r.default_task_list.map(|l| l.name),
                default_execution_start_to_close: r.default_execution_start_to_close_timeout,
                default_task_start_to_close: r.default_task_start_to_close_timeout,
            },
        );
        Ok(json!({}))
    }
}
