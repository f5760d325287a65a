//! Synthetic Jetstream v1 streams: ordinary chatter, decoys, isolated
//! complaints, outage surges and the likes, follows and reposts that make
//! up most of a real firehose.
//!
//! Deterministic for a seed (ChaCha8, whose output is stable across
//! versions), so the demo recording in `data/`, the benchmarks and the
//! detection tests can be regenerated bit for bit. The text pools are
//! plain lists of posts; none of them is tuned to the matcher.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use outagewatch::alert::rfc3339;
use outagewatch::{MICROS_PER_SEC, Micros};

/// A surge of reports about one service.
#[derive(Debug, Clone)]
pub struct Surge {
    /// Names people use for the service, as they would type them.
    pub names: Vec<String>,
    /// Seconds from the start of the stream.
    pub start_secs: i64,
    pub duration_secs: i64,
    /// Distinct new authors reporting per minute at the peak.
    pub peak_per_min: f64,
    /// Posts saying the service works again, per minute, after the surge.
    pub recovery_per_min: f64,
    /// Share of the duration spent ramping up to the peak (0: at once).
    pub ramp: f64,
}

/// A burst of many authors posting decoys (a market crash, a big game).
#[derive(Debug, Clone)]
pub struct DecoyBurst {
    pub texts: Vec<String>,
    pub start_secs: i64,
    pub duration_secs: i64,
    pub per_min: f64,
}

#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    pub start_us: Micros,
    pub duration_secs: i64,
    /// Ordinary posts per second.
    pub posts_per_sec: f64,
    /// Non-post events (likes, follows, reposts, ...) per post.
    pub others_per_post: f64,
    /// Isolated genuine complaints per hour, spread over many services.
    pub complaints_per_hour: f64,
    /// Share of ordinary posts that are decoys ("the Dow is down").
    pub decoy_share: f64,
    pub surges: Vec<Surge>,
    pub decoy_bursts: Vec<DecoyBurst>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            start_us: 1_783_170_000 * MICROS_PER_SEC,
            duration_secs: 600,
            posts_per_sec: 5.0,
            others_per_post: 2.0,
            complaints_per_hour: 20.0,
            decoy_share: 0.03,
            surges: Vec::new(),
            decoy_bursts: Vec::new(),
        }
    }
}

/// The demo recording in `data/demo.jsonl.gz` (see `data/README.md`):
/// thirty minutes from 2026-07-04T14:00:00Z, a Discord outage from 14:17
/// for six minutes, a burst of Netflix stock chatter from 14:06 and one of
/// football chatter from 14:25, which must not alert.
pub fn demo_config() -> SynthConfig {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    SynthConfig {
        seed: 20_260_704,
        start_us: 1_783_173_600_000_000,
        duration_secs: 30 * 60,
        posts_per_sec: 3.0,
        others_per_post: 2.0,
        complaints_per_hour: 30.0,
        decoy_share: 0.04,
        surges: vec![Surge {
            names: strings(&["discord", "Discord", "DISCORD"]),
            start_secs: 17 * 60,
            duration_secs: 6 * 60,
            peak_per_min: 30.0,
            recovery_per_min: 4.0,
            ramp: 0.2,
        }],
        decoy_bursts: vec![
            DecoyBurst {
                texts: strings(&[
                    "Netflix stock down 9% after earnings 📉",
                    "netflix shares are down 9% premarket, subscriber miss",
                    "$NFLX down 9% today, ouch",
                    "the Dow is down 900 points and netflix is leading the drop",
                ]),
                start_secs: 6 * 60,
                duration_secs: 5 * 60,
                per_min: 25.0,
            },
            DecoyBurst {
                texts: strings(&[
                    "TOUCHDOWN!!!",
                    "what a touchdown omg",
                    "3rd down and they convert, unreal",
                    "feeling down after that fumble",
                ]),
                start_secs: 25 * 60,
                duration_secs: 4 * 60,
                per_min: 30.0,
            },
        ],
    }
}

const CHATTER: &[&str] = &[
    "good morning everyone ☀️",
    "just finished a 10k run, legs are jelly",
    "watching the new season on netflix tonight, no spoilers pls",
    "anyone have a good sourdough recipe?",
    "my cat knocked my coffee off the desk again 😾",
    "new video up on youtube! link in bio",
    "this song has been stuck in my head for three days",
    "the light this evening is unreal",
    "reading a great book about the history of maps",
    "join our discord server for the book club, link below",
    "bom dia! café e trabalho",
    "que calor hoy en madrid",
    "今日はいい天気ですね",
    "heute gibt es Pizza 🍕",
    "finally fixed the bug that haunted me all week",
    "spotify wrapped came early in my heart",
    "the github actions docs are actually good?",
    "does anyone still use instagram for photos",
    "gardening update: the tomatoes are winning",
    "hot take: pineapple on pizza is fine",
    "learning rust, the borrow checker and I are becoming friends",
    "can't believe it's already friday",
    "thread on why cities need more trees 🧵",
    "my kid asked why the sky is blue and I had to google it",
    "el partido de anoche fue increíble",
    "o show ontem foi incrível",
    "je cherche un bon café à lyon",
    "guardando la partita stasera",
    "오늘 점심 뭐 먹지",
    "x marks the spot on this old treasure map",
];

const DECOYS: &[&str] = &[
    "the Dow is down 800 points today, ouch",
    "feeling down today, might stay in",
    "TOUCHDOWN!!! what a play",
    "anyone down for discord tonight? game night",
    "Netflix stock down 5% after earnings",
    "twitter was down last night lol",
    "Facebook shut down the group I was in",
    "downloading the new spotify update",
    "calm down, it's just a game",
    "the servers will be down for maintenance at 2am",
    "3rd down and long, come on defense",
    "meet me downtown at 7",
    "my laptop crashed again, time for a new one",
    "instagram isn't down, it's your wifi",
    "a bolsa caiu 3% hoje",
    "試験に落ちた…",
    "youtube is back, nevermind",
];

const REPORT_TEMPLATES: &[&str] = &[
    "is {} down?",
    "{} down for anyone else??",
    "{} not loading",
    "{} keeps disconnecting me, is it down",
    "#{}Down",
    "{} is down again 😩",
    "wtf {} won't load",
    "is it just me or is {} broken rn",
    "{} not working for me, anyone else?",
    "{} outage?",
    "o {} caiu?",
    "se cayó {}?",
    "{} geht nicht",
    "{} down?? can't log in",
    "{} having issues right now",
];

const RECOVERY_TEMPLATES: &[&str] = &["{} is back", "{} working again 🙏", "ok {} is back up"];

const COMPLAINT_NAMES: &[&str] = &[
    "twitter",
    "instagram",
    "whatsapp",
    "youtube",
    "gmail",
    "reddit",
    "netflix",
    "spotify",
    "github",
    "slack",
    "steam",
    "twitch",
    "tiktok",
    "outlook",
    "chatgpt",
];

const OTHER_COLLECTIONS: &[(&str, u32)] = &[
    ("app.bsky.feed.like", 60),
    ("app.bsky.feed.repost", 15),
    ("app.bsky.graph.follow", 12),
    ("app.bsky.actor.profile", 3),
    ("app.bsky.graph.block", 2),
];

pub struct Generator {
    config: SynthConfig,
    rng: ChaCha8Rng,
}

impl Generator {
    pub fn new(config: SynthConfig) -> Self {
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Generator { config, rng }
    }

    /// Calls `emit` with each frame, in (nearly) increasing event time.
    pub fn run(mut self, mut emit: impl FnMut(String)) {
        let end = self.config.start_us + self.config.duration_secs * MICROS_PER_SEC;
        let mut t = self.config.start_us;
        let post_rate = self.config.posts_per_sec.max(1e-6);
        let event_rate = post_rate * (1.0 + self.config.others_per_post);
        loop {
            t += self.exponential(event_rate);
            if t >= end {
                break;
            }
            let second = (t - self.config.start_us) / MICROS_PER_SEC;
            if self
                .rng
                .random_bool((1.0 / (1.0 + self.config.others_per_post)).min(1.0))
            {
                let text = self.ordinary_text();
                let frame = self.post_frame(t, &text);
                emit(frame);
            } else {
                let frame = self.other_frame(t);
                emit(frame);
            }
            // Reports and decoy bursts are extra posts on top of the chatter.
            let dt_min = 1.0 / event_rate / 60.0;
            let complaints = self.config.complaints_per_hour / 60.0;
            if self.rng.random_bool((complaints * dt_min).min(1.0)) {
                let name = COMPLAINT_NAMES[self.rng.random_range(0..COMPLAINT_NAMES.len())];
                let text = self.report_text(name);
                emit(self.post_frame(t + 1, &text));
            }
            for i in 0..self.config.surges.len() {
                let surge = self.config.surges[i].clone();
                let rate = surge_rate(&surge, second);
                if rate > 0.0 && self.rng.random_bool((rate * dt_min).min(1.0)) {
                    let name = surge.names[self.rng.random_range(0..surge.names.len())].clone();
                    let text = self.report_text(&name);
                    emit(self.post_frame(t + 2, &text));
                }
                let after = second - surge.start_secs - surge.duration_secs;
                if (0..300).contains(&after)
                    && self
                        .rng
                        .random_bool((surge.recovery_per_min * dt_min).min(1.0))
                {
                    let name = surge.names[0].clone();
                    let template =
                        RECOVERY_TEMPLATES[self.rng.random_range(0..RECOVERY_TEMPLATES.len())];
                    emit(self.post_frame(t + 3, &template.replace("{}", &name)));
                }
            }
            for i in 0..self.config.decoy_bursts.len() {
                let burst = &self.config.decoy_bursts[i];
                let active =
                    (burst.start_secs..burst.start_secs + burst.duration_secs).contains(&second);
                if active && self.rng.random_bool((burst.per_min * dt_min).min(1.0)) {
                    let texts = burst.texts.clone();
                    let text = &texts[self.rng.random_range(0..texts.len())];
                    emit(self.post_frame(t + 4, text));
                }
            }
        }
    }

    /// Microseconds until the next event of a Poisson process.
    fn exponential(&mut self, per_sec: f64) -> Micros {
        let u: f64 = self.rng.random::<f64>().max(1e-12);
        ((-u.ln() / per_sec) * 1e6) as Micros + 1
    }

    fn ordinary_text(&mut self) -> String {
        if self.rng.random_bool(self.config.decoy_share) {
            DECOYS[self.rng.random_range(0..DECOYS.len())].to_owned()
        } else {
            CHATTER[self.rng.random_range(0..CHATTER.len())].to_owned()
        }
    }

    fn report_text(&mut self, name: &str) -> String {
        let template = REPORT_TEMPLATES[self.rng.random_range(0..REPORT_TEMPLATES.len())];
        let name = if template.starts_with('#') {
            capitalize(name).replace(' ', "")
        } else if self.rng.random_bool(0.3) {
            capitalize(name)
        } else {
            name.to_owned()
        };
        let text = template.replace("{}", &name);
        if self.rng.random_bool(0.1) {
            text.to_uppercase()
        } else {
            text
        }
    }

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        (0..len)
            .map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    fn did(&mut self) -> String {
        format!("did:plc:{}", self.token(24))
    }

    fn post_frame(&mut self, time_us: Micros, text: &str) -> String {
        let did = self.did();
        let rkey = self.token(13);
        let rev = self.token(13);
        let langs = if text.is_ascii() {
            json!(["en"])
        } else {
            json!([])
        };
        json!({
            "did": did,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": rev,
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": rkey,
                "record": {
                    "$type": "app.bsky.feed.post",
                    "createdAt": rfc3339(time_us),
                    "langs": langs,
                    "text": text,
                },
                "cid": format!("bafyrei{}", self.token(52)),
            }
        })
        .to_string()
    }

    fn other_frame(&mut self, time_us: Micros) -> String {
        let did = self.did();
        let roll = self.rng.random_range(0..100u32);
        if roll < 2 {
            return json!({"did": did, "time_us": time_us, "kind": "identity",
                "identity": {"did": did, "handle": format!("{}.bsky.social", self.token(8)), "seq": time_us / 1000, "time": rfc3339(time_us)}})
            .to_string();
        }
        if roll < 4 {
            let rkey = self.token(13);
            return json!({"did": did, "time_us": time_us, "kind": "commit",
                "commit": {"rev": self.token(13), "operation": "delete", "collection": "app.bsky.feed.post", "rkey": rkey}})
            .to_string();
        }
        let total: u32 = OTHER_COLLECTIONS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        let mut collection = OTHER_COLLECTIONS[0].0;
        for (name, weight) in OTHER_COLLECTIONS {
            if pick < *weight {
                collection = name;
                break;
            }
            pick -= weight;
        }
        let subject = format!("at://{}/app.bsky.feed.post/{}", self.did(), self.token(13));
        json!({
            "did": did,
            "time_us": time_us,
            "kind": "commit",
            "commit": {
                "rev": self.token(13),
                "operation": "create",
                "collection": collection,
                "rkey": self.token(13),
                "record": {
                    "$type": collection,
                    "createdAt": rfc3339(time_us),
                    "subject": {"cid": format!("bafyrei{}", self.token(52)), "uri": subject},
                },
                "cid": format!("bafyrei{}", self.token(52)),
            }
        })
        .to_string()
    }
}

/// Reports per minute at `second`: a ramp over the first `ramp` of the
/// duration, a plateau, a decay over the last third.
fn surge_rate(surge: &Surge, second: i64) -> f64 {
    let offset = second - surge.start_secs;
    if offset < 0 || offset >= surge.duration_secs {
        return 0.0;
    }
    let x = offset as f64 / surge.duration_secs.max(1) as f64;
    let shape = if x < surge.ramp {
        x / surge.ramp
    } else if x < 0.67 {
        1.0
    } else {
        (1.0 - x) / 0.33
    };
    surge.peak_per_min * shape.max(0.05)
}

fn capitalize(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
