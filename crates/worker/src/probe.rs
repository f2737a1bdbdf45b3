//! `check --aws`: what only the service knows, asked with read-only calls.
//!
//! An activity that does not exist, a domain never registered or a type
//! with another version are invisible to the config: the worker would start
//! and then log refused polls. So `check --aws` asks the service about each
//! with the worker's own configuration (region, endpoint, credentials) and
//! reports, per call, whether the credentials may make it. It never calls
//! what the worker calls to serve: a poll could take a task and leave it to
//! time out, so those permissions are listed, not tried.

use crate::config::Config;
use crate::redact::Inert;
use crate::service::{Operation, ServiceError, Verdict, from_sdk_error};
use std::collections::BTreeSet;

/// What one answer means for the check.
enum Answer {
    /// The thing exists as the config expects.
    Ok(String),
    /// It does not, or cannot work: a problem `run` would hit.
    Problem(String),
    /// The call was not allowed or did not get an answer: unknown, not
    /// counted (the worker does not need it to serve).
    Unknown(String),
}

/// Sorts an error answer to a read-only call about `what`.
fn answer(e: &ServiceError, call: &str, missing: impl FnOnce() -> String) -> Answer {
    let code = e.code.as_str();
    match e.verdict {
        _ if matches!(
            code,
            "ActivityDoesNotExist" | "UnknownResourceFault" | "ResourceNotFoundException"
        ) =>
        {
            Answer::Problem(missing())
        }
        Verdict::Credentials if code.starts_with("AccessDenied") => Answer::Unknown(format!(
            "cannot tell: the credentials may not call {call} ({code})"
        )),
        Verdict::Credentials => Answer::Problem(format!(
            "the service refused the credentials ({}); {}",
            Inert(&e.to_string()),
            crate::service::credentials::FIX
        )),
        // What `run` would be refused for too: a malformed ARN, a KMS or
        // deprecation setting.
        Verdict::Refused | Verdict::Misconfigured => Answer::Problem(format!(
            "the service refused {call}: {}",
            Inert(&e.to_string())
        )),
        _ => Answer::Unknown(format!(
            "cannot tell: {call} failed: {}",
            Inert(&e.to_string())
        )),
    }
}

fn print(label: &str, answer: Answer) -> usize {
    match answer {
        Answer::Ok(what) => {
            println!("  {label}: ok, {what}");
            0
        }
        Answer::Problem(what) => {
            println!("  {label}: FAILED: {what}");
            1
        }
        Answer::Unknown(what) => {
            println!("  {label}: {what}");
            0
        }
    }
}

/// Asks the service about every activity, domain, task list and type in
/// `config`; returns the problems found. Fails as `run` would start: no
/// region or no usable credentials.
pub(crate) async fn probe(config: &Config) -> anyhow::Result<usize> {
    let sdk = crate::aws_sdk_config(config).await?;
    let (endpoint, endpoint_from) = crate::startup::endpoints_in_use(config, &sdk);
    println!(
        "service: region {}, endpoint {endpoint} ({endpoint_from})",
        sdk.region().map(|r| r.to_string()).unwrap_or_default(),
    );
    let mut problems = 0;
    if !config.activities.is_empty() {
        let sfn = aws_sdk_sfn::Client::new(&sdk);
        for a in &config.activities {
            let result = sfn.describe_activity().activity_arn(&a.arn).send().await;
            let label = format!("activity {}", a.name);
            problems += print(
                &label,
                match result {
                    Ok(_) => Answer::Ok(format!("{} exists", a.arn)),
                    Err(e) => answer(
                        &from_sdk_error(Operation::Describe, e),
                        "states:DescribeActivity",
                        || {
                            format!(
                                "{} does not exist; create it (aws stepfunctions create-activity \
                                 --name {}) or fix `{}`",
                                a.arn,
                                a.arn.rsplit(':').next().unwrap_or_default(),
                                a.id().key("arn")
                            )
                        },
                    ),
                },
            );
        }
    }
    if !config.task_lists.is_empty() {
        let swf = aws_sdk_swf::Client::new(&sdk);
        let mut domains = BTreeSet::new();
        for list in &config.task_lists {
            let key = format!("swf.{}.domain", crate::config::toml_key(&list.name));
            if domains.insert(list.domain.clone()) {
                let result = swf.describe_domain().name(&list.domain).send().await;
                problems += print(
                    &format!("domain {}", list.domain),
                    match result {
                        Ok(out) => {
                            let status = out.domain_info().map(|i| i.status().as_str().to_string());
                            if status.as_deref() == Some("DEPRECATED") {
                                Answer::Problem(format!(
                                    "domain {} is deprecated: no new work is scheduled in it; \
                                     fix `{key}`",
                                    list.domain
                                ))
                            } else {
                                Answer::Ok("registered".into())
                            }
                        }
                        Err(e) => answer(
                            &from_sdk_error(Operation::Describe, e),
                            "swf:DescribeDomain",
                            || {
                                format!(
                                    "domain {} is not registered; register it (aws swf \
                                     register-domain --name {} \
                                     --workflow-execution-retention-period-in-days 1) or fix `{key}`",
                                    list.domain, list.domain
                                )
                            },
                        ),
                    },
                );
            }
            let task_list = aws_sdk_swf::types::TaskList::builder()
                .name(&list.task_list)
                .build()?;
            let result = swf
                .count_pending_activity_tasks()
                .domain(&list.domain)
                .task_list(task_list)
                .send()
                .await;
            problems += print(
                &format!("task list {} in {}", list.task_list, list.domain),
                match result {
                    Ok(out) => Answer::Ok(format!(
                        "{}{} tasks waiting",
                        out.count(),
                        if out.truncated() { "+" } else { "" }
                    )),
                    Err(e) => answer(
                        &from_sdk_error(Operation::Describe, e),
                        "swf:CountPendingActivityTasks",
                        || format!("domain {} is not registered; fix `{key}`", list.domain),
                    ),
                },
            );
            for t in &list.types {
                let label = format!("type {}", t.id);
                let Some(version) = &t.version else {
                    println!("  {label}: any version is served; not looked up");
                    continue;
                };
                let activity_type = aws_sdk_swf::types::ActivityType::builder()
                    .name(&t.name)
                    .version(version)
                    .build()?;
                let result = swf
                    .describe_activity_type()
                    .domain(&list.domain)
                    .activity_type(activity_type)
                    .send()
                    .await;
                problems += print(
                    &label,
                    match result {
                        Ok(out) => {
                            let status = out.type_info().map(|i| i.status().as_str().to_string());
                            if status.as_deref() == Some("DEPRECATED") {
                                Answer::Problem(format!(
                                    "type {} {version} is deprecated in {}: no new task of it \
                                     is scheduled; fix {}",
                                    t.name,
                                    list.domain,
                                    t.id.key_hint("version")
                                ))
                            } else {
                                Answer::Ok("registered".into())
                            }
                        }
                        Err(e) => answer(
                            &from_sdk_error(Operation::Describe, e),
                            "swf:DescribeActivityType",
                            || {
                                format!(
                                    "type {} {version} is not registered in {}; register it \
                                     (aws swf register-activity-type) or fix {}",
                                    t.name,
                                    list.domain,
                                    t.id.key_hint("version")
                                )
                            },
                        ),
                    },
                );
            }
        }
    }
    println!(
        "  not tried (a poll could take a task): the worker's own calls. Its role needs{}{}",
        if config.activities.is_empty() {
            ""
        } else {
            " states:GetActivityTask, SendTaskHeartbeat, SendTaskSuccess and SendTaskFailure on \
             its activities;"
        },
        if config.task_lists.is_empty() {
            ""
        } else {
            " swf:PollForActivityTask, RecordActivityTaskHeartbeat and \
             RespondActivityTaskCompleted/Failed/Canceled on its domains"
        }
    );
    Ok(problems)
}
