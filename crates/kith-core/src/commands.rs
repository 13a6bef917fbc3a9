//! Slash commands: what a bot may declare ([`parse_commands`]), and
//! whether an invocation matches what it declared ([`check_invocation`]).
//! Pure validation, shared by the request parser and the hub.

use kith_proto::commands::{type_name, usage};
use kith_proto::v1::{self, option_value::Value};

use crate::text::{CommandName, CommandText, OptionText, TextError};

/// Commands one bot may offer.
pub const MAX_COMMANDS: usize = 25;
/// Options one command may take.
pub const MAX_OPTIONS: usize = 10;

/// A bot's declared commands, checked and cleaned: names are slugs,
/// unique per bot and per command; descriptions one short line; option
/// types known; required options first. `bot_id` is the server's to set.
pub fn parse_commands(raw: Vec<v1::Command>) -> Result<Vec<v1::Command>, TextError> {
    if raw.len() > MAX_COMMANDS {
        return Err(TextError { field: "commands", problem: format!("at most {MAX_COMMANDS}") });
    }
    let mut out: Vec<v1::Command> = Vec::with_capacity(raw.len());
    for c in raw {
        let name = CommandName::parse("command name", &c.name)?.0;
        if out.iter().any(|o| o.name == name) {
            return Err(TextError { field: "commands", problem: format!("/{name} is declared twice") });
        }
        if c.options.len() > MAX_OPTIONS {
            return Err(TextError { field: "options", problem: format!("/{name}: at most {MAX_OPTIONS}") });
        }
        let mut options: Vec<v1::CommandOption> = Vec::with_capacity(c.options.len());
        for o in c.options {
            let oname = CommandName::parse("option name", &o.name)?.0;
            if options.iter().any(|p| p.name == oname) {
                return Err(TextError {
                    field: "options",
                    problem: format!("/{name}: {oname} is declared twice"),
                });
            }
            if !matches!(
                v1::OptionType::try_from(o.r#type),
                Ok(v1::OptionType::String | v1::OptionType::Integer | v1::OptionType::Boolean)
            ) {
                return Err(TextError {
                    field: "options",
                    problem: format!("/{name} {oname}: the type must be string, integer or boolean"),
                });
            }
            if o.required && options.last().is_some_and(|p| !p.required) {
                return Err(TextError {
                    field: "options",
                    problem: format!("/{name}: required options come before optional ones ({oname})"),
                });
            }
            let description = CommandText::parse("option description", &o.description)?.0;
            options.push(v1::CommandOption {
                name: oname,
                description,
                r#type: o.r#type,
                required: o.required,
            });
        }
        let description = CommandText::parse("command description", &c.description)?.0;
        out.push(v1::Command { bot_id: 0, name, description, options });
    }
    Ok(out)
}

/// An invocation's values, checked on their own: names are slugs, each
/// given once, text one line of 1-1000 characters.
pub fn parse_values(raw: Vec<v1::OptionValue>) -> Result<Vec<v1::OptionValue>, TextError> {
    if raw.len() > MAX_OPTIONS {
        return Err(TextError { field: "options", problem: format!("at most {MAX_OPTIONS}") });
    }
    let mut out: Vec<v1::OptionValue> = Vec::with_capacity(raw.len());
    for v in raw {
        let name = CommandName::parse("option name", &v.name)?.0;
        if out.iter().any(|o| o.name == name) {
            return Err(TextError { field: "options", problem: format!("{name} is given twice") });
        }
        let value = match v.value {
            Some(Value::String(s)) => Value::String(OptionText::parse(&s)?.0),
            Some(other) => other,
            None => return Err(TextError { field: "options", problem: format!("{name} has no value") }),
        };
        out.push(v1::OptionValue { name, value: Some(value) });
    }
    Ok(out)
}

/// Whether `values` fit `command`: every option known and of its type,
/// every required one given. The refusal says what to fix.
pub fn check_invocation(command: &v1::Command, values: &[v1::OptionValue]) -> Result<(), String> {
    for v in values {
        let Some(o) = command.options.iter().find(|o| o.name == v.name) else {
            return Err(format!("/{} has no option {}{}", command.name, v.name, usage_hint(command)));
        };
        let fits = matches!(
            (v1::OptionType::try_from(o.r#type), &v.value),
            (Ok(v1::OptionType::String), Some(Value::String(_)))
                | (Ok(v1::OptionType::Integer), Some(Value::Integer(_)))
                | (Ok(v1::OptionType::Boolean), Some(Value::Boolean(_)))
        );
        if !fits {
            return Err(format!("/{} {}: must be {}", command.name, o.name, type_name(o.r#type)));
        }
    }
    if let Some(missing) =
        command.options.iter().find(|o| o.required && !values.iter().any(|v| v.name == o.name))
    {
        return Err(format!("/{} needs {}{}", command.name, missing.name, usage_hint(command)));
    }
    Ok(())
}

fn usage_hint(command: &v1::Command) -> String {
    format!(" (usage: {})", usage(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(name: &str, t: v1::OptionType, required: bool) -> v1::CommandOption {
        v1::CommandOption { name: name.into(), description: String::new(), r#type: t as i32, required }
    }

    fn count() -> v1::Command {
        v1::Command {
            bot_id: 0,
            name: "Count".into(),
            description: "counts to n".into(),
            options: vec![
                option("n", v1::OptionType::Integer, true),
                option("loud", v1::OptionType::Boolean, false),
            ],
        }
    }

    fn value(name: &str, v: Value) -> v1::OptionValue {
        v1::OptionValue { name: name.into(), value: Some(v) }
    }

    #[test]
    fn declared_commands_are_cleaned_and_bounded() {
        let parsed = parse_commands(vec![count()]).unwrap();
        assert_eq!(parsed[0].name, "count");
        assert_eq!(usage(&parsed[0]), "/count n:integer [loud:boolean]");
        let many = vec![count(); MAX_COMMANDS + 1];
        assert!(parse_commands(many).unwrap_err().problem.contains("at most 25"));
        assert!(parse_commands(vec![count(), count()]).unwrap_err().problem.contains("twice"));
        let mut wide = count();
        wide.options = (0..11).map(|i| option(&format!("o{i}"), v1::OptionType::String, false)).collect();
        assert!(parse_commands(vec![wide]).is_err());
        let mut untyped = count();
        untyped.options[0].r#type = 0;
        assert!(parse_commands(vec![untyped]).is_err());
        let mut order = count();
        order.options.reverse();
        assert!(parse_commands(vec![order]).unwrap_err().problem.contains("required options come before"));
        let mut hostile = count();
        hostile.description = "\u{1b}[2J".repeat(100);
        assert!(parse_commands(vec![hostile]).is_err());
    }

    #[test]
    fn an_invocation_must_fit_the_declaration() {
        let c = &parse_commands(vec![count()]).unwrap()[0];
        assert_eq!(check_invocation(c, &[value("n", Value::Integer(5))]), Ok(()));
        let e = check_invocation(c, &[]).unwrap_err();
        assert!(e.contains("needs n") && e.contains("usage: /count n:integer"), "{e}");
        let e = check_invocation(c, &[value("n", Value::String("five".into()))]).unwrap_err();
        assert!(e.contains("must be integer"), "{e}");
        assert!(
            check_invocation(c, &[value("n", Value::Integer(1)), value("x", Value::Boolean(true))]).is_err()
        );
        assert!(parse_values(vec![value("n", Value::Integer(1)), value("n", Value::Integer(2))]).is_err());
        assert!(parse_values(vec![value("t", Value::String("a\nb".into()))]).is_err());
    }
}
