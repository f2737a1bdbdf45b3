//! Replacing what a source runs while its tasks run, on a paused clock with
//! a fake service and scripted handlers: a running task finishes on the
//! handler (or source) it started with; new tasks get the new one. (The
//! loading half of `Sources` needs a wasmtime engine and real components;
//! the e2e reload tests cover it.)

use super::*;
use crate::registry::testing::{Scripted, activity};
use crate::service::fake::{Call, FakeService};
use crate::service::{Task, TaskToken};
use std::sync::atomic::Ordering;

fn task(n: usize) -> Task {
    Task {
        token: TaskToken::new(format!("token-{n}")),
        input: "{}".into(),
        activity_type: None,
    }
}

/// A source's poller as `Sources` builds one, stopped by `stop`.
fn poller(
    route: Route,
    service: &Arc<FakeService>,
    slots: &Arc<Slots>,
    tasks: &TaskTracker,
    stop: Shutdown,
) -> Poller {
    Poller {
        name: "core".into(),
        config_key: "activity.core.arn".into(),
        pollers: 1,
        route,
        service: service.clone(),
        slots: slots.clone(),
        pool: Arc::new(Semaphore::new(8)),
        tenant: None,
        tasks: tasks.clone(),
        shutdown: stop,
    }
}

/// Advances the paused clock until `done` holds (at most an hour).
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn health() -> Arc<SourceHealth> {
    let health = crate::health::Health::default();
    health.set_started(true);
    health.register("activity.core")
}

#[tokio::test(start_paused = true)]
async fn a_swap_leaves_running_tasks_on_the_old_handler_and_routes_new_ones() {
    let service = Arc::new(FakeService::default());
    service.tasks.lock().unwrap().push_back(task(0));
    let v1 = Scripted::new(Duration::from_secs(60), "\"v1\"");
    let v1_running = v1.running.clone();
    let core = activity("core", Component::new("v1", v1), Duration::from_secs(5));
    let (stages, tasks) = (Shutdown::new(), TaskTracker::new());
    let slots = Slots::new(4);
    let running = tokio::spawn(
        poller(
            Route::One(core.clone()),
            &service,
            &slots,
            &tasks,
            stages.clone(),
        )
        .run(health()),
    );
    until("task 0 running on v1", || {
        v1_running.load(Ordering::SeqCst) == 1
    })
    .await;

    let v2 = Arc::new(Component::new(
        "v2",
        Scripted::new(Duration::from_secs(1), "\"v2\""),
    ));
    let swapped = route_new_tasks(std::slice::from_ref(&core), &v2);
    assert_eq!(swapped.len(), 1);
    assert_eq!(swapped[0].1.version, "v1", "the handler it replaced");
    assert!(
        route_new_tasks(std::slice::from_ref(&core), &v2).is_empty(),
        "an activity already on v2 is left alone"
    );
    service.tasks.lock().unwrap().push_back(task(1));
    until("task 1 reported", || service.reports().len() == 1).await;
    assert_eq!(
        service.reports(),
        vec![Call::Complete("token-1".into(), "\"v2\"".into())],
        "the new task ran v2 while task 0 still runs v1"
    );
    assert_eq!(v1_running.load(Ordering::SeqCst), 1);

    stages.initiate();
    running.await.unwrap();
    tasks.close();
    tasks.wait().await;
    assert_eq!(
        service.reports()[1],
        Call::Complete("token-0".into(), "\"v1\"".into()),
        "task 0 finished on the handler it started with"
    );
    assert_eq!(stages.handed_back(), 0);
}

/// What `Sources::apply` does to a changed source: its own shutdown
/// token stops its pollers (`stop`), a new poller with the new handler
/// starts under the worker's stages (`launch`), both on the source's
/// slots.
#[tokio::test(start_paused = true)]
async fn a_replaced_source_finishes_its_running_task_while_the_new_one_serves() {
    let service = Arc::new(FakeService::default());
    service.tasks.lock().unwrap().push_back(task(0));
    let old = Scripted::new(Duration::from_secs(60), "\"old\"");
    let old_running = old.running.clone();
    let (stages, tasks) = (Shutdown::new(), TaskTracker::new());
    let slots = Slots::new(2);
    let old_stop = stages.child();
    let old_source = tokio::spawn(
        poller(
            Route::One(activity(
                "core",
                Component::new("old", old),
                Duration::from_secs(5),
            )),
            &service,
            &slots,
            &tasks,
            old_stop.clone(),
        )
        .run(health()),
    );
    until("task 0 running on the old source", || {
        old_running.load(Ordering::SeqCst) == 1
    })
    .await;

    old_stop.initiate();
    old_source.await.unwrap();
    assert!(!stages.is_initiated(), "only the old source stopped");
    let polls = service.polls.load(Ordering::SeqCst);
    let new = Scripted::new(Duration::from_secs(1), "\"new\"");
    let new_runs = new.runs.clone();
    let new_source = tokio::spawn(
        poller(
            Route::One(activity(
                "core",
                Component::new("new", new),
                Duration::from_secs(5),
            )),
            &service,
            &slots,
            &tasks,
            stages.child(),
        )
        .run(health()),
    );
    service.tasks.lock().unwrap().push_back(task(1));
    until("task 1 reported", || service.reports().len() == 1).await;
    assert!(
        service.polls.load(Ordering::SeqCst) > polls,
        "the new source polls"
    );
    assert_eq!(
        service.reports(),
        vec![Call::Complete("token-1".into(), "\"new\"".into())]
    );
    assert_eq!(old_running.load(Ordering::SeqCst), 1, "task 0 still runs");
    assert_eq!(new_runs.load(Ordering::SeqCst), 1);

    stages.initiate();
    new_source.await.unwrap();
    tasks.close();
    tasks.wait().await;
    assert_eq!(
        service.reports()[1],
        Call::Complete("token-0".into(), "\"old\"".into()),
        "the old source's task finished on its handler and was reported"
    );
    assert_eq!(stages.handed_back(), 0);
}
