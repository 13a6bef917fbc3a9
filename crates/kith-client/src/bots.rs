//! Bots and slash commands from the client's side: making bots, offering
//! commands (as a bot), invoking them and answering calls.

use kith_proto::v1::{self, client_message::Request, reply::Result as ReplyResult};

use crate::{Client, Error};

impl Client {
    /// Makes a bot in `community`; the answer holds its token, once.
    pub async fn create_bot(&self, community_id: u64, name: &str) -> Result<v1::BotToken, Error> {
        let r = v1::CreateBotRequest { community_id, name: name.into() };
        match self.request(Request::CreateBot(r)).await? {
            ReplyResult::BotToken(t) => Ok(t),
            _ => Err(Error::Unexpected),
        }
    }

    /// A new token for a bot of `community`; the old one stops working.
    pub async fn rotate_bot_token(&self, community_id: u64, bot_id: u64) -> Result<v1::BotToken, Error> {
        let r = v1::RotateBotTokenRequest { community_id, bot_id };
        match self.request(Request::RotateBotToken(r)).await? {
            ReplyResult::BotToken(t) => Ok(t),
            _ => Err(Error::Unexpected),
        }
    }

    /// As a bot: the commands it offers, replacing any before.
    pub async fn register_commands(&self, commands: Vec<v1::Command>) -> Result<(), Error> {
        self.request(Request::RegisterCommands(v1::RegisterCommandsRequest { commands })).await.map(drop)
    }

    /// Invokes a bot's command in a channel; its answers come as
    /// `call_update` events with the returned call id.
    pub async fn invoke(
        &self,
        channel_id: u64,
        bot_id: u64,
        name: &str,
        options: Vec<v1::OptionValue>,
    ) -> Result<u64, Error> {
        let r = v1::InvokeCommandRequest { channel_id, bot_id, name: name.into(), options };
        match self.request(Request::InvokeCommand(r)).await? {
            ReplyResult::CallStarted(c) => Ok(c.call_id),
            _ => Err(Error::Unexpected),
        }
    }

    /// As a bot: answers a call (progress, a final answer, or an error).
    pub async fn answer_call(&self, answer: v1::AnswerCallRequest) -> Result<(), Error> {
        self.request(Request::AnswerCall(answer)).await.map(drop)
    }
}
