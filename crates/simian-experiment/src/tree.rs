//! A position-aware YAML tree, kept beside serde_yaml's value so that any
//! problem, even in a well-typed value, can point at its line and column.

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone)]
pub enum Node {
    Scalar {
        text: String,
        pos: Pos,
        plain: bool,
        quoted: bool,
    },
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pos: Pos,
    },
    Alias {
        pos: Pos,
    },
}

impl Node {
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. }
            | Node::Seq { pos, .. }
            | Node::Map { pos, .. }
            | Node::Alias { pos } => *pos,
        }
    }

    /// Characters a caret under this node should span (scalars only; 1 otherwise).
    pub fn width(&self) -> usize {
        match self {
            Node::Scalar { text, quoted, .. } if !text.contains('\n') => {
                text.chars().count().max(1) + if *quoted { 2 } else { 0 }
            }
            _ => 1,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The key node and value node of a mapping entry.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        match self {
            Node::Map { entries, .. } => entries.iter().find_map(|(k, v)| match k {
                Node::Scalar { text, .. } if text == key => Some((k, v)),
                _ => None,
            }),
            _ => None,
        }
    }

    pub fn index(&self, i: usize) -> Option<&Node> {
        match self {
            Node::Seq { items, .. } => items.get(i),
            _ => None,
        }
    }

    /// Follows `path` as far as it goes; returns the deepest node reached.
    pub fn walk<'a>(&'a self, path: &[Seg]) -> &'a Node {
        let mut node = self;
        for seg in path {
            let next = match seg {
                Seg::Key(k) => node.get(k),
                Seg::Index(i) => node.index(*i),
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node
    }

    /// The key node of the last segment when it is a key, else the value node.
    pub fn walk_key<'a>(&'a self, path: &[Seg]) -> &'a Node {
        match path.split_last() {
            Some((Seg::Key(k), parent)) => {
                let p = self.walk(parent);
                p.entry(k).map_or(p, |(k, _)| k)
            }
            _ => self.walk(path),
        }
    }
}

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path such as `method[2].inject.process`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    pub fn key(&self, k: &str) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> Path {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses the first document of `src` into a tree.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut b, false).map_err(|e| SyntaxError {
        pos: to_pos(e.marker()),
        message: e.info().to_string(),
    })?;
    Ok(b.root.unwrap_or(Node::Scalar {
        text: String::new(),
        pos: Pos { line: 1, col: 1 },
        plain: true,
        quoted: false,
    }))
}

fn to_pos(m: &Marker) -> Pos {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<Node>,
    root: Option<Node>,
}

impl Builder {
    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Node::Seq { items, .. }) => items.push(node),
            Some(Node::Map { entries, .. }) => {
                // Keys and values arrive alternately; a pending key has a placeholder value.
                match entries.last_mut() {
                    Some((
                        _,
                        v @ Node::Alias {
                            pos: Pos { line: 0, .. },
                        },
                    )) => *v = node,
                    _ => entries.push((
                        node,
                        Node::Alias {
                            pos: Pos::default(),
                        },
                    )),
                }
            }
            _ => {
                if self.root.is_none() {
                    self.root = Some(node)
                }
            }
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = to_pos(&mark);
        match ev {
            Event::Scalar(text, style, _, _) => self.push_value(Node::Scalar {
                text,
                pos,
                plain: style == TScalarStyle::Plain,
                quoted: matches!(
                    style,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted
                ),
            }),
            Event::Alias(_) => self.push_value(Node::Alias { pos }),
            Event::SequenceStart(..) => self.stack.push(Node::Seq { items: vec![], pos }),
            Event::MappingStart(..) => self.stack.push(Node::Map {
                entries: vec![],
                pos,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(mut n) = self.stack.pop() {
                    // A block mapping is marked where its first `:` is; its first key is where it starts.
                    if let Node::Map { entries, pos } = &mut n {
                        if let Some((k, _)) = entries.first() {
                            let kp = k.pos();
                            if (kp.line, kp.col) < (pos.line, pos.col) {
                                *pos = kp;
                            }
                        }
                    }
                    self.push_value(n);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_keys_and_values() {
        let src = "a: 1\nb:\n  c: [x, y]\n  d:\n    - e: 'q'\n";
        let t = parse(src).unwrap();
        let p = |path: &[Seg]| t.walk(path).pos();
        assert_eq!(p(&[Seg::Key("a".into())]), Pos { line: 1, col: 4 });
        assert_eq!(
            t.walk_key(&[Seg::Key("b".into())]).pos(),
            Pos { line: 2, col: 1 }
        );
        let y = [Seg::Key("b".into()), Seg::Key("c".into()), Seg::Index(1)];
        assert_eq!(p(&y), Pos { line: 3, col: 10 });
        let e = [
            Seg::Key("b".into()),
            Seg::Key("d".into()),
            Seg::Index(0),
            Seg::Key("e".into()),
        ];
        assert_eq!(p(&e), Pos { line: 5, col: 10 });
        assert_eq!(t.walk(&e).width(), 3);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
