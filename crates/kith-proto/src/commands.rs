//! Slash commands as people type them, for every client: `/count 5`,
//! `/weather city:Paris days=3`, `/echo "two words"`. One reading of the
//! words against what the command declares ([`values`]), and one way of
//! showing how to call it ([`usage`]).

use crate::v1::{self, option_value::Value};

/// `string`, `integer` or `boolean`.
pub fn type_name(t: i32) -> &'static str {
    match v1::OptionType::try_from(t) {
        Ok(v1::OptionType::Integer) => "integer",
        Ok(v1::OptionType::Boolean) => "boolean",
        _ => "string",
    }
}

/// How to call a command: `/count n:integer [step:integer]`.
pub fn usage(command: &v1::Command) -> String {
    let mut out = format!("/{}", command.name);
    for o in &command.options {
        let part = format!("{}:{}", o.name, type_name(o.r#type));
        out.push(' ');
        out.push_str(&if o.required { part } else { format!("[{part}]") });
    }
    out
}

/// Words split at spaces, a double-quoted stretch kept whole (quotes
/// dropped): `a "b c" d` is `a`, `b c`, `d`.
pub fn split(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let (word, after) = match rest.strip_prefix('"').and_then(|r| r.split_once('"')) {
            Some((quoted, after)) => (quoted, after),
            None => rest.split_once(char::is_whitespace).unwrap_or((rest, "")),
        };
        out.push(word.to_owned());
        rest = after.trim_start();
    }
    out
}

/// The option values `words` give `command`: `name:value` or `name=value`
/// for any option, and bare words for the options in order (the last text
/// option takes every word left). Numbers and yes/no are read for integer
/// and boolean options. The refusal says what is wrong and how to call it.
pub fn values(command: &v1::Command, words: &[String]) -> Result<Vec<v1::OptionValue>, String> {
    let hint = || format!(" (usage: {})", usage(command));
    let mut given: Vec<(usize, String)> = Vec::new();
    let mut bare: Vec<&str> = Vec::new();
    for w in words {
        let named = w.split_once([':', '=']).and_then(|(name, value)| {
            let at = command.options.iter().position(|o| o.name.eq_ignore_ascii_case(name))?;
            Some((at, value.to_owned()))
        });
        match named {
            Some((at, _)) if given.iter().any(|(g, _)| *g == at) => {
                return Err(format!("{} is given twice{}", command.options[at].name, hint()));
            }
            Some(pair) => given.push(pair),
            None => bare.push(w),
        }
    }
    let free: Vec<usize> =
        (0..command.options.len()).filter(|i| !given.iter().any(|(g, _)| g == i)).collect();
    let mut free = free.into_iter().peekable();
    while !bare.is_empty() {
        let Some(at) = free.next() else {
            return Err(format!("/{} takes no more than that: {:?}{}", command.name, bare.join(" "), hint()));
        };
        let text = command.options[at].r#type == v1::OptionType::String as i32;
        let take = if text && free.peek().is_none() { bare.len() } else { 1 };
        given.push((at, bare.drain(..take).collect::<Vec<_>>().join(" ")));
    }
    given.sort_by_key(|(at, _)| *at);
    let mut out = Vec::with_capacity(given.len());
    for (at, raw) in given {
        let o = &command.options[at];
        let value = match v1::OptionType::try_from(o.r#type) {
            Ok(v1::OptionType::Integer) => Value::Integer(
                raw.trim()
                    .parse()
                    .map_err(|_| format!("{} must be a whole number, not {raw:?}{}", o.name, hint()))?,
            ),
            Ok(v1::OptionType::Boolean) => Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => true,
                "false" | "no" | "off" | "0" => false,
                _ => return Err(format!("{} must be yes or no, not {raw:?}{}", o.name, hint())),
            }),
            _ => Value::String(raw),
        };
        out.push(v1::OptionValue { name: o.name.clone(), value: Some(value) });
    }
    if let Some(missing) =
        command.options.iter().find(|o| o.required && !out.iter().any(|v| v.name == o.name))
    {
        return Err(format!("/{} needs {}{}", command.name, missing.name, hint()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> v1::Command {
        let option = |name: &str, t: v1::OptionType, required| v1::CommandOption {
            name: name.into(),
            description: String::new(),
            r#type: t as i32,
            required,
        };
        v1::Command {
            bot_id: 7,
            name: "weather".into(),
            description: String::new(),
            options: vec![
                option("city", v1::OptionType::String, true),
                option("days", v1::OptionType::Integer, false),
                option("metric", v1::OptionType::Boolean, false),
            ],
        }
    }

    fn words(line: &str) -> Vec<String> {
        split(line)
    }

    fn text(v: &v1::OptionValue) -> String {
        match &v.value {
            Some(Value::String(s)) => format!("{}={s}", v.name),
            Some(Value::Integer(n)) => format!("{}={n}", v.name),
            Some(Value::Boolean(b)) => format!("{}={b}", v.name),
            None => v.name.clone(),
        }
    }

    fn read(line: &str) -> Result<Vec<String>, String> {
        values(&command(), &words(line)).map(|vs| vs.iter().map(text).collect())
    }

    #[test]
    fn named_and_bare_words_fill_the_options() {
        assert_eq!(usage(&command()), "/weather city:string [days:integer] [metric:boolean]");
        assert_eq!(read("city:Paris days=3").unwrap(), ["city=Paris", "days=3"]);
        assert_eq!(
            read("days:2 \"New York\" metric:yes").unwrap(),
            ["city=New York", "days=2", "metric=true"]
        );
        assert_eq!(read("Paris 5").unwrap(), ["city=Paris", "days=5"]);
        assert!(read("").unwrap_err().contains("/weather needs city (usage: /weather city:string"));
        assert!(read("Paris days:many").unwrap_err().contains("days must be a whole number"));
        assert!(read("city:a city:b").unwrap_err().contains("twice"));
        assert!(read("Paris 1 yes extra").unwrap_err().contains("takes no more"));
    }

    #[test]
    fn the_last_text_option_takes_the_rest() {
        let mut echo = command();
        echo.options.truncate(1);
        assert_eq!(
            values(&echo, &split("hello there world")).unwrap()[0].value,
            Some(Value::String("hello there world".into()))
        );
    }
}
