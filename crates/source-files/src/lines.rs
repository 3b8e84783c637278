//! Line-oriented files read from a position: FHIR NDJSON and Nightscout TSV.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use healthanalyzer_source::Result;

use crate::position::{Position, io, open};
use crate::{Item, Record, RecordReader};

/// What to make of one non-empty line (its text, its line number, where it is).
pub(crate) type Parse<'a> = Box<dyn FnMut(&str, &str) -> Vec<Item> + Send + 'a>;

/// A file read line by line; blank lines are skipped.
pub(crate) struct LineReader<'a> {
    file: BufReader<std::fs::File>,
    path: &'a Path,
    at: Position,
    line: String,
    parse: Parse<'a>,
}

impl<'a> LineReader<'a> {
    pub(crate) fn open(path: &'a Path, at: Position, parse: Parse<'a>) -> Result<Self> {
        let mut file = BufReader::new(open(path)?);
        file.seek(SeekFrom::Start(at.offset))
            .map_err(|e| io(path, e))?;
        Ok(LineReader {
            file,
            path,
            at: Position {
                line: at.line.max(1),
                ..at
            },
            line: String::new(),
            parse,
        })
    }
}

impl RecordReader for LineReader<'_> {
    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            let start = Position { part: 0, ..self.at };
            self.line.clear();
            let n = self
                .file
                .read_line(&mut self.line)
                .map_err(|e| io(self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.at.offset += n as u64;
            self.at.line += 1;
            let text = self.line.trim();
            if text.is_empty() {
                continue;
            }
            let location = format!("{}:{}", self.path.display(), start.line);
            let items = (self.parse)(text, &location);
            return Ok(Some(Record {
                start,
                after: Position { part: 0, ..self.at },
                items,
            }));
        }
    }
}
