//! Meeting minutes (docs/minutes.md): offline speech recognition of each recorded
//! utterance (`recognizer`, Whisper through whisper.cpp), the minutes as documents a user
//! takes away (`document`: Markdown, DOCX, PDF), and how good a transcript is (`score`).
//! No I/O beyond loading the model: audio in, text out.

pub mod document;
pub mod recognizer;
pub mod score;

pub use recognizer::{Recognized, Recognizer, RecognizerError, Session, Settings};
