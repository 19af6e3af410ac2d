//! The per-series state machine: fed one judged minute at a time, in
//! order, it moves between closed, warming up, open and cooling down and
//! says when to notify (open, reminder, close). All times are the start of
//! the minute being evaluated (unix seconds), so a replay of the same
//! minutes gives the same incidents.

use crate::condition::{judge, History};
use crate::model::{AlertDef, NoData};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Closed,
    WarmingUp,
    Open,
    CoolingDown,
}

/// One minute of one series, judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// The condition holds; `value` is `None` for a missing minute under
    /// `no_data: alert`.
    Holds { value: Option<f64> },
    /// The condition does not hold.
    Clear { value: f64 },
    /// A missing minute under `no_data: keep`: nothing changes.
    Skip,
}

impl Input {
    /// Judges a minute's value (`None`: no data) by the alert's condition
    /// and no-data policy.
    pub fn judge(def: &AlertDef, value: Option<f64>, h: &History) -> Input {
        let v = match (value, def.no_data) {
            (Some(v), _) => v,
            (None, NoData::Zero) => 0.0,
            (None, NoData::Keep) => return Input::Skip,
            (None, NoData::Alert) => return Input::Holds { value: None },
        };
        if judge(&def.condition, v, h) {
            Input::Holds { value: Some(v) }
        } else {
            Input::Clear { value: v }
        }
    }
}

/// An incident: one stretch of time a series was open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `{alert id}-{n}`, unique for the alert.
    pub id: String,
    /// First minute of the warm-up that led to the incident.
    pub started_at: i64,
    /// The minute whose evaluation opened it (warm-up complete).
    pub opened_at: i64,
    /// The minute whose evaluation closed it (cool-down complete).
    pub closed_at: Option<i64>,
    /// Values seen from the start of the warm-up on (minutes with data).
    pub last: Option<f64>,
    /// The worst value: the lowest for `<`/`<=`, else the highest.
    pub peak: Option<f64>,
    pub sum: f64,
    pub count: u64,
    /// Opened by minutes without data (`no_data: alert`).
    pub no_data: bool,
}

impl Incident {
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Open,
    Reminder,
    Close,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Reminder => "reminder",
            EventKind::Close => "close",
        }
    }
}

/// Something to notify, with the incident as it stands after the minute.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub minute: i64,
    pub incident: Incident,
}

/// The state of one series of one alert.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SeriesState {
    pub phase: Phase,
    /// Consecutive minutes the condition held (warming up) or did not
    /// (cooling down).
    #[serde(default)]
    pub run: u32,
    /// While warming up: the incident to be (its id is given at opening);
    /// while open or cooling down: the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Incident>,
    /// The minute of the last open or reminder notification.
    #[serde(default)]
    pub last_notified: i64,
    /// The newest minute with data, to forget series that went away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_data: Option<i64>,
}

impl SeriesState {
    /// Feeds one minute. `next_id` names a new incident when one opens.
    pub fn step(
        &mut self,
        def: &AlertDef,
        minute: i64,
        input: Input,
        next_id: impl FnOnce() -> String,
    ) -> Option<Event> {
        let op = def.condition.op();
        let record = |inc: &mut Incident, value: Option<f64>| {
            if let Some(v) = value {
                inc.last = Some(v);
                inc.peak = Some(inc.peak.map_or(v, |p| op.worse(p, v)));
                inc.sum += v;
                inc.count += 1;
            }
        };
        match input {
            Input::Skip => {}
            Input::Holds { value } => {
                if value.is_some() {
                    self.last_data = Some(minute);
                }
                match self.phase {
                    Phase::Closed | Phase::WarmingUp => {
                        if self.phase == Phase::Closed {
                            self.phase = Phase::WarmingUp;
                            self.run = 0;
                            self.incident = Some(Incident {
                                id: String::new(),
                                started_at: minute,
                                opened_at: minute,
                                closed_at: None,
                                last: None,
                                peak: None,
                                sum: 0.0,
                                count: 0,
                                no_data: false,
                            });
                        }
                        self.run += 1;
                        let inc = self.incident.as_mut()?;
                        record(inc, value);
                        inc.no_data |= value.is_none();
                        if self.run >= def.warmup_minutes.max(1) {
                            inc.id = next_id();
                            inc.opened_at = minute;
                            self.phase = Phase::Open;
                            self.run = 0;
                            self.last_notified = minute;
                            return Some(Event {
                                kind: EventKind::Open,
                                minute,
                                incident: inc.clone(),
                            });
                        }
                        return None;
                    }
                    Phase::Open | Phase::CoolingDown => {
                        // Back during the cool-down: the incident stays open.
                        self.phase = Phase::Open;
                        self.run = 0;
                        if let Some(inc) = self.incident.as_mut() {
                            record(inc, value);
                        }
                    }
                }
            }
            Input::Clear { value } => {
                self.last_data = Some(minute);
                match self.phase {
                    Phase::Closed => return None,
                    Phase::WarmingUp => {
                        // Warm-up interrupted: nothing was notified, nothing to close.
                        *self = SeriesState {
                            last_data: self.last_data,
                            ..SeriesState::default()
                        };
                        return None;
                    }
                    Phase::Open | Phase::CoolingDown => {
                        if self.phase == Phase::Open {
                            self.phase = Phase::CoolingDown;
                            self.run = 0;
                        }
                        self.run += 1;
                        let inc = self.incident.as_mut()?;
                        record(inc, Some(value));
                        if self.run >= def.cooldown_minutes.max(1) {
                            inc.closed_at = Some(minute);
                            let incident = inc.clone();
                            *self = SeriesState {
                                last_data: self.last_data,
                                ..SeriesState::default()
                            };
                            return Some(Event {
                                kind: EventKind::Close,
                                minute,
                                incident,
                            });
                        }
                    }
                }
            }
        }
        // Still open (or cooling down, which is still open): remind?
        if matches!(self.phase, Phase::Open | Phase::CoolingDown)
            && def.reminder_minutes > 0
            && minute - self.last_notified >= def.reminder_minutes as i64 * 60
        {
            self.last_notified = minute;
            return Some(Event {
                kind: EventKind::Reminder,
                minute,
                incident: self.incident.clone()?,
            });
        }
        None
    }

    /// Nothing to remember: closed, no warm-up in progress.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Closed
    }
}

/// Everything the evaluator keeps for one alert, persisted after each pass.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AlertState {
    /// The newest minute evaluated (its start); the next pass starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<i64>,
    /// Incidents opened so far (names the next one).
    #[serde(default)]
    pub incidents: u64,
    /// Per series key (env and tags), its state.
    #[serde(default)]
    pub series: BTreeMap<String, SeriesState>,
}

impl AlertState {
    /// A new incident id for the alert.
    pub fn next_incident_id(incidents: &mut u64, alert_id: &str) -> String {
        *incidents += 1;
        format!("{alert_id}-{incidents}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Condition, Op};

    fn alert(warmup: u32, cooldown: u32, reminder: u32, no_data: NoData) -> AlertDef {
        AlertDef {
            name: "t".into(),
            app: None,
            env: None,
            metric: "m".into(),
            field: None,
            tags: Default::default(),
            condition: Condition::Threshold {
                op: Op::Gt,
                threshold: 10.0,
            },
            warmup_minutes: warmup,
            cooldown_minutes: cooldown,
            reminder_minutes: reminder,
            no_data,
            description: String::new(),
            channels: Vec::new(),
            enabled: true,
        }
    }

    /// Runs values (None: no data) from minute 0 and returns
    /// (kind, minute index) of each event plus the final state.
    fn run(def: &AlertDef, values: &[Option<f64>]) -> (Vec<(EventKind, i64)>, SeriesState) {
        let mut s = SeriesState::default();
        let mut n = 0;
        let mut events = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let input = Input::judge(def, *v, &History::default());
            if let Some(e) = s.step(def, i as i64 * 60, input, || {
                AlertState::next_incident_id(&mut n, "a")
            }) {
                events.push((e.kind, i as i64));
            }
        }
        (events, s)
    }

    fn vals(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|x| Some(*x)).collect()
    }

    #[test]
    fn opens_after_warmup_and_closes_after_cooldown() {
        let def = alert(3, 2, 0, NoData::Zero);
        let (ev, s) = run(&def, &vals(&[1., 20., 20., 20., 20., 1., 1., 1.]));
        assert_eq!(ev, vec![(EventKind::Open, 3), (EventKind::Close, 6)]);
        assert_eq!(s.phase, Phase::Closed);
    }

    #[test]
    fn interrupted_warmup_never_opens() {
        let def = alert(3, 1, 0, NoData::Zero);
        let (ev, s) = run(&def, &vals(&[20., 20., 1., 20., 20., 1.]));
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(s.phase, Phase::Closed);
        let (ev, s) = run(&def, &vals(&[20., 20., 1., 20., 20., 20.]));
        assert_eq!(ev, vec![(EventKind::Open, 5)]);
        assert_eq!(s.phase, Phase::Open);
    }

    #[test]
    fn interrupted_cooldown_keeps_the_incident_open() {
        let def = alert(1, 3, 0, NoData::Zero);
        let (ev, s) = run(&def, &vals(&[20., 1., 1., 20., 1., 1.]));
        assert_eq!(ev, vec![(EventKind::Open, 0)]);
        assert_eq!(s.phase, Phase::CoolingDown);
        assert_eq!(s.run, 2);
        let inc = s.incident.unwrap();
        assert_eq!(inc.id, "a-1", "the same incident throughout");
        assert_eq!(inc.peak, Some(20.0));
        let (ev, _) = run(&def, &vals(&[20., 1., 1., 20., 1., 1., 1.]));
        assert_eq!(ev, vec![(EventKind::Open, 0), (EventKind::Close, 6)]);
    }

    #[test]
    fn reminders_every_k_minutes_while_open() {
        let def = alert(1, 1, 2, NoData::Zero);
        let (ev, _) = run(&def, &vals(&[20., 20., 20., 20., 20., 1.]));
        assert_eq!(
            ev,
            vec![
                (EventKind::Open, 0),
                (EventKind::Reminder, 2),
                (EventKind::Reminder, 4),
                (EventKind::Close, 5)
            ]
        );
        let (ev, _) = run(&alert(1, 1, 0, NoData::Zero), &vals(&[20.; 6]));
        assert_eq!(ev, vec![(EventKind::Open, 0)], "no reminders when 0");
    }

    #[test]
    fn no_data_zero_counts_as_zero() {
        let mut def = alert(2, 1, 0, NoData::Zero);
        def.condition = Condition::Threshold {
            op: Op::Lt,
            threshold: 1.0,
        };
        let (ev, s) = run(&def, &[Some(5.0), None, None, Some(3.0)]);
        assert_eq!(ev, vec![(EventKind::Open, 2), (EventKind::Close, 3)]);
        assert_eq!(s.phase, Phase::Closed);
    }

    #[test]
    fn no_data_keep_skips_minutes() {
        let def = alert(2, 2, 0, NoData::Keep);
        // A gap neither interrupts the warm-up nor counts towards it.
        let (ev, _) = run(&def, &[Some(20.), None, None, Some(20.)]);
        assert_eq!(ev, vec![(EventKind::Open, 3)]);
        // Nor the cool-down.
        let (ev, s) = run(&def, &[Some(20.), Some(20.), Some(1.), None, None]);
        assert_eq!(ev, vec![(EventKind::Open, 1)]);
        assert_eq!((s.phase, s.run), (Phase::CoolingDown, 1));
    }

    #[test]
    fn no_data_alert_opens_a_no_data_incident() {
        let def = alert(2, 1, 0, NoData::Alert);
        let (ev, s) = run(&def, &[Some(1.), None, None, None]);
        assert_eq!(ev, vec![(EventKind::Open, 2)]);
        let inc = s.incident.clone().unwrap();
        assert!(inc.no_data);
        assert_eq!((inc.peak, inc.count), (None, 0));
        let (ev, _) = run(&def, &[Some(1.), None, None, Some(1.)]);
        assert_eq!(ev, vec![(EventKind::Open, 2), (EventKind::Close, 3)]);
    }

    #[test]
    fn incident_values_cover_warmup_and_open_minutes() {
        let def = alert(2, 1, 0, NoData::Zero);
        let mut s = SeriesState::default();
        let mut n = 0;
        let mut last = None;
        for (i, v) in [11.0, 30.0, 15.0, 2.0].iter().enumerate() {
            let input = Input::judge(&def, Some(*v), &History::default());
            if let Some(e) = s.step(&def, 600 + i as i64 * 60, input, || {
                AlertState::next_incident_id(&mut n, "x")
            }) {
                last = Some(e);
            }
        }
        let e = last.unwrap();
        assert_eq!(e.kind, EventKind::Close);
        let inc = e.incident;
        assert_eq!(
            (inc.started_at, inc.opened_at, inc.closed_at),
            (600, 660, Some(780))
        );
        assert_eq!((inc.peak, inc.last), (Some(30.0), Some(2.0)));
        assert_eq!(inc.mean(), Some(58.0 / 4.0));
    }

    #[test]
    fn week_ago_baseline_drives_the_machine() {
        let mut def = alert(2, 1, 0, NoData::Zero);
        def.condition = Condition::WeekAgo {
            op: Op::Lt,
            change_pct: -50.0,
        };
        let ago = [100.0, 100.0, 100.0, 100.0];
        let now = [90.0, 40.0, 30.0, 80.0];
        let mut s = SeriesState::default();
        let mut n = 0;
        let mut ev = Vec::new();
        for i in 0..4 {
            let h = History {
                week_ago: Some(ago[i]),
                window: &[],
            };
            let input = Input::judge(&def, Some(now[i]), &h);
            if let Some(e) = s.step(&def, i as i64 * 60, input, || {
                AlertState::next_incident_id(&mut n, "w")
            }) {
                ev.push((e.kind, i));
            }
        }
        assert_eq!(ev, vec![(EventKind::Open, 2), (EventKind::Close, 3)]);
    }

    #[test]
    fn rolling_baseline_drives_the_machine() {
        let mut def = alert(1, 1, 0, NoData::Zero);
        def.condition = Condition::Rolling {
            op: Op::Gt,
            window_minutes: 5,
            deviations: 3.0,
        };
        let series = [10.0, 11.0, 9.0, 10.0, 11.0, 9.0, 50.0, 10.0];
        let mut s = SeriesState::default();
        let mut n = 0;
        let mut ev = Vec::new();
        for i in 0..series.len() {
            let window = &series[i.saturating_sub(5)..i];
            let h = History {
                week_ago: None,
                window,
            };
            let input = Input::judge(&def, Some(series[i]), &h);
            if let Some(e) = s.step(&def, i as i64 * 60, input, || {
                AlertState::next_incident_id(&mut n, "r")
            }) {
                ev.push((e.kind, i));
            }
        }
        assert_eq!(ev, vec![(EventKind::Open, 6), (EventKind::Close, 7)]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let def = alert(1, 3, 0, NoData::Zero);
        let (_, s) = run(&def, &vals(&[20., 1.]));
        let mut st = AlertState {
            cursor: Some(60),
            incidents: 1,
            series: Default::default(),
        };
        st.series.insert("default|{}".into(), s);
        let back: AlertState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(st, back);
    }
}
