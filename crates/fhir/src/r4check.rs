//! The strict R4 check at serde speed: one walk over the JSON, guided by fhirbolt's own
//! generated R4 tables, that gives fhirbolt Strict's verdict without building its typed model.
//!
//! [`check_strict`](crate::check_strict) asks [`fast_check`] first. The walk accepts a resource
//! only when it is sure fhirbolt (Strict mode) accepts it too; wherever it is not sure (a
//! construct it does not cover, or a resource fhirbolt may refuse), it answers
//! [`Verdict::Unsure`] and the caller asks fhirbolt ([`fhirbolt_check`]), whose verdict and
//! message are final. So a rejection always comes from fhirbolt, with the element's path added
//! where the walk found one, and an acceptance by the walk is one fhirbolt would give.
//!
//! What the walk holds a resource to (the union of what fhirbolt 0.4.0 checks, read from its
//! source, `fhirbolt-serde`'s element and generated model deserializers):
//!
//! - every key is an element of its type (`fhirbolt_shared::element_map::r4::ELEMENT_MAP`, which
//!   equals the generated deserializers' field lists) and appears once;
//! - the value has the element's type (`fhirbolt_shared::type_hints::r4::TYPE_HINTS`: complex
//!   types, backbone elements, content references, primitives, resources), an array exactly
//!   where the element repeats, never an empty array or a `null`;
//! - primitives: a JSON string for the string-like types, `true`/`false` for `boolean`, a JSON
//!   number for `decimal`, an integer number that fits `i32` (`integer`) or `u32`
//!   (`positiveInt`, `unsignedInt`);
//! - at most one type of a choice element (`value[x]`), and the required elements of each type
//!   (a table generated from fhirbolt-serde's `missing_field` calls, below);
//! - a primitive's `_element` companion (`_birthDate`): an object of `id` and `extension`, an
//!   array of those and `null`s beside a repeating primitive (`_given`); fhirbolt merges it
//!   into the element, so `x` and `_x` each appear once and take one choice;
//! - `resourceType` first in every resource (the root, `contained`, `Bundle.entry.resource`…),
//!   naming an R4 resource type.
//!
//! Left to fhirbolt (the walk says unsure): keys that repeat, companions of `Resource.id`,
//! `Narrative.div` and of complex elements, `resourceType` not first, `ExampleScenario` (its `instance` holds a `resourceType` element),
//! and every input the walk refuses, which fhirbolt may still accept (a number where a string
//! belongs, an object where an array belongs, a one-element array where one value belongs).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use fhirbolt_shared::element_map::r4::ELEMENT_MAP;
use fhirbolt_shared::type_hints::r4::TYPE_HINTS;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::Result;

/// The walk's answer on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// fhirbolt's Strict mode accepts it; the root resource's type.
    Valid(&'static str),
    /// The walk cannot vouch for it: ask fhirbolt.
    Unsure,
}

/// The walk alone: [`Verdict::Valid`] only for a resource fhirbolt's Strict mode accepts.
/// Never panics; costs one pass over the text and no allocation for the common resource.
pub fn fast_check(json: &str) -> Verdict {
    walk(json, None)
}

/// fhirbolt's own verdict (its typed R4 model in Strict mode, a size bound, a panic turned into
/// an error): the reference [`fast_check`] is held to.
pub fn fhirbolt_check(json: &str) -> Result<()> {
    crate::strict::check_fhirbolt(json)
}

/// The path of the first element the walk refused, for a message (`Observation.component[1]
/// .valueQuantity.valeu`), or `None`.
pub(crate) fn refusal_path(json: &str) -> Option<String> {
    let trail = RefCell::new(Vec::new());
    let (verdict, root) = walk_from(json, Some(&trail));
    match verdict {
        Verdict::Valid(_) => None,
        Verdict::Unsure => {
            let trail = trail.into_inner();
            if trail.is_empty() {
                return None;
            }
            let mut path = root.unwrap_or("Resource").to_string();
            for seg in trail.iter().rev() {
                match seg {
                    Seg::Key(k) => {
                        if !path.is_empty() {
                            path.push('.');
                        }
                        path.push_str(k);
                    }
                    Seg::Index(i) => {
                        path.push('[');
                        path.push_str(&i.to_string());
                        path.push(']');
                    }
                }
            }
            Some(path)
        }
    }
}

fn walk(json: &str, trail: Option<&RefCell<Vec<Seg>>>) -> Verdict {
    walk_from(json, trail).0
}

/// The verdict, and the root resource's type where the walk read it.
fn walk_from(json: &str, trail: Option<&RefCell<Vec<Seg>>>) -> (Verdict, Option<&'static str>) {
    let schema = schema();
    let cx = Cx {
        schema,
        trail,
        root: Cell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let verdict = match ResourceSeed(&cx).deserialize(&mut de) {
        Ok(t) if de.end().is_ok() => Verdict::Valid(schema.types[t as usize].path),
        _ => Verdict::Unsure,
    };
    (verdict, cx.root.get())
}

/// One step of a refusal's path, collected while the walk unwinds.
enum Seg {
    Key(String),
    Index(usize),
}

// ---------------------------------------------------------------------------------------------
// The schema: fhirbolt's tables resolved once into indexed types.

#[derive(Clone, Copy)]
enum Prim {
    Str,
    Bool,
    Int,
    UInt,
    Dec,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A complex type or backbone element: the index of its type.
    Complex(u32),
    /// Any resource (`contained`, `Bundle.entry.resource`).
    Resource,
    /// A primitive, as `{"value": …}` in fhirbolt's element model.
    Prim(Prim),
    /// A bare string (`Element.id`, `Extension.url`).
    Plain,
}

struct Elem {
    name: &'static str,
    kind: Kind,
    array: bool,
    /// 1 + the index of its choice group (`value[x]`), or 0.
    group: u8,
}

enum Req {
    Elem(u16),
    Group(u8),
}

struct Type {
    path: &'static str,
    /// Sorted by name.
    elems: Vec<Elem>,
    /// Open addressing over `elems` by [`key_hash`]: an index, or `u16::MAX` for empty; the
    /// length a power of two.
    table: Vec<u16>,
    required: Vec<Req>,
    /// False where the walk leaves the type to fhirbolt.
    supported: bool,
}

struct Schema {
    types: Vec<Type>,
    resources: HashMap<&'static str, u32>,
    /// A primitive's `_element` companion: `id` and `extension`.
    companion: u32,
}

/// At most this many elements per type (a bit each while walking an object).
const MAX_ELEMS: usize = 512;
/// At most this many choice groups per type.
const MAX_GROUPS: usize = 64;

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(build)
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn build() -> Schema {
    let mut paths: Vec<&'static str> = ELEMENT_MAP
        .keys()
        .copied()
        .filter(|p| p.starts_with(|c: char| c.is_ascii_uppercase()))
        .collect();
    paths.sort_unstable();
    let index: HashMap<&'static str, u32> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, i as u32))
        .collect();
    // Type names a choice element's name can end in: every complex type and resource, and the
    // primitives (`dateTime` as `DateTime`).
    let type_names: std::collections::HashSet<String> = ELEMENT_MAP
        .keys()
        .filter(|p| !p.contains('.'))
        .map(|p| capitalized(p))
        .collect();
    let mut types = Vec::with_capacity(paths.len());
    let mut resources = HashMap::new();
    for (ti, &path) in paths.iter().enumerate() {
        let names = ELEMENT_MAP.get(path).copied();
        let names: Vec<&'static str> = names
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let resource = !path.contains('.') && names.contains(&"implicitRules");
        let mut supported = names.len() <= MAX_ELEMS && path != "ExampleScenario";
        let mut elems = Vec::with_capacity(names.len());
        let mut groups: Vec<String> = Vec::new();
        for &name in &names {
            let child = format!("{path}.{name}");
            let c = child.as_str();
            let inherited_array = matches!(name, "extension" | "modifierExtension" | "contained")
                && !TYPE_HINTS.type_paths.contains_key(c)
                && !TYPE_HINTS.all_primitives_paths.contains(c);
            let kind = if path == "Extension" && name == "url" {
                Some(Kind::Plain)
            } else if let Some(target) = TYPE_HINTS.content_reference_paths.get(c) {
                index.get(target).map(|&t| Kind::Complex(t))
            } else if let Some(ty) = TYPE_HINTS.type_paths.get(c) {
                if *ty == "Resource" {
                    Some(Kind::Resource)
                } else {
                    index.get(ty).map(|&t| Kind::Complex(t))
                }
            } else if TYPE_HINTS.all_primitives_paths.contains(c) {
                let h = &TYPE_HINTS;
                Some(Kind::Prim(if h.boolean_paths.contains(c) {
                    Prim::Bool
                } else if h.integer_paths.contains(c) {
                    Prim::Int
                } else if h.positive_integer_paths.contains(c)
                    || h.unsigned_integer_paths.contains(c)
                {
                    Prim::UInt
                } else if h.decimal_paths.contains(c) {
                    Prim::Dec
                } else if h.integer64_paths.contains(c) {
                    // Not in R4; left to fhirbolt.
                    supported = false;
                    Prim::Str
                } else {
                    Prim::Str
                }))
            } else if let Some(&t) = index.get(c) {
                Some(Kind::Complex(t))
            } else {
                match name {
                    "extension" | "modifierExtension" => {
                        index.get("Extension").map(|&t| Kind::Complex(t))
                    }
                    "id" if resource => Some(Kind::Prim(Prim::Str)),
                    "id" => Some(Kind::Plain),
                    "meta" => index.get("Meta").map(|&t| Kind::Complex(t)),
                    "implicitRules" | "language" => Some(Kind::Prim(Prim::Str)),
                    "text" => index.get("Narrative").map(|&t| Kind::Complex(t)),
                    "contained" => Some(Kind::Resource),
                    _ => None,
                }
            };
            let Some(kind) = kind else {
                supported = false;
                continue;
            };
            let array = TYPE_HINTS.array_paths.contains(c) || inherited_array;
            // A choice element: a name ending in a type's name (`valueQuantity`); the group is
            // the part before it.
            let group = name
                .char_indices()
                .filter(|(_, ch)| ch.is_ascii_uppercase())
                .find(|(i, _)| type_names.contains(&name[*i..]))
                .map(|(i, _)| &name[..i]);
            let group = match group {
                Some(base) => {
                    let g = match groups.iter().position(|b| b == base) {
                        Some(g) => g,
                        None => {
                            groups.push(base.to_string());
                            groups.len() - 1
                        }
                    };
                    if g >= MAX_GROUPS {
                        supported = false;
                        0
                    } else {
                        g as u8 + 1
                    }
                }
                None => 0,
            };
            elems.push(Elem {
                name,
                kind,
                array,
                group,
            });
        }
        elems.sort_unstable_by(|a, b| a.name.cmp(b.name));
        let table = hash_table(&elems);
        let mut required = Vec::new();
        for r in required_elements(path) {
            if let Some(base) = r.strip_suffix("[x]") {
                match groups.iter().position(|b| b == base) {
                    Some(g) if g < MAX_GROUPS => required.push(Req::Group(g as u8 + 1)),
                    _ => supported = false,
                }
            } else {
                match elems.binary_search_by(|e| e.name.cmp(r)) {
                    Ok(i) => required.push(Req::Elem(i as u16)),
                    Err(_) => supported = false,
                }
            }
        }
        if resource {
            resources.insert(path, ti as u32);
        }
        types.push(Type {
            path,
            elems,
            table,
            required,
            supported,
        });
    }
    let companion = types.len() as u32;
    let extension = index.get("Extension").copied();
    let elems = vec![
        Elem {
            name: "extension",
            kind: Kind::Complex(extension.unwrap_or(0)),
            array: true,
            group: 0,
        },
        Elem {
            name: "id",
            kind: Kind::Plain,
            array: false,
            group: 0,
        },
    ];
    types.push(Type {
        path: "Element",
        table: hash_table(&elems),
        elems,
        required: Vec::new(),
        supported: extension.is_some(),
    });
    Schema {
        types,
        resources,
        companion,
    }
}

/// FNV-1a over a key's bytes: cheaper than a binary search of string compares.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn hash_table(elems: &[Elem]) -> Vec<u16> {
    let size = (elems.len() * 2).next_power_of_two().max(4);
    let mut table = vec![u16::MAX; size];
    for (i, e) in elems.iter().enumerate() {
        let mut slot = key_hash(e.name) as usize & (size - 1);
        while table[slot] != u16::MAX {
            slot = (slot + 1) & (size - 1);
        }
        table[slot] = i as u16;
    }
    table
}

impl Type {
    /// The index of the element named `key`.
    fn find(&self, key: &str) -> Option<usize> {
        let mask = self.table.len() - 1;
        let mut slot = key_hash(key) as usize & mask;
        loop {
            let i = self.table[slot];
            if i == u16::MAX {
                return None;
            }
            if self.elems[i as usize].name == key {
                return Some(i as usize);
            }
            slot = (slot + 1) & mask;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The walk.

struct Cx<'s> {
    schema: &'s Schema,
    trail: Option<&'s RefCell<Vec<Seg>>>,
    /// The root resource's type, once read.
    root: Cell<Option<&'static str>>,
}

impl Cx<'_> {
    fn note(&self, seg: impl FnOnce() -> Seg) {
        if let Some(t) = self.trail {
            t.borrow_mut().push(seg());
        }
    }
}

fn unsure<E: de::Error>() -> E {
    E::custom("unsure")
}

/// A key, borrowed from the input where it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A resource: `resourceType` first; the index of its type.
struct ResourceSeed<'a, 's>(&'a Cx<'s>);

impl<'de> DeserializeSeed<'de> for ResourceSeed<'_, '_> {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_map(ResourceVisitor(self.0))
    }
}

struct ResourceVisitor<'a, 's>(&'a Cx<'s>);

impl<'de> Visitor<'de> for ResourceVisitor<'_, '_> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a resource")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let cx = self.0;
        match map.next_key::<Key<'de>>()? {
            Some(Key(k)) if k == "resourceType" => {}
            _ => {
                cx.note(|| Seg::Key("resourceType".into()));
                return Err(unsure());
            }
        }
        let Key(name) = map.next_value::<Key<'de>>().inspect_err(|_| {
            cx.note(|| Seg::Key("resourceType".into()));
        })?;
        let Some(&t) = cx.schema.resources.get(name.as_ref()) else {
            cx.note(|| Seg::Key("resourceType".into()));
            return Err(unsure());
        };
        if cx.root.get().is_none() {
            cx.root.set(Some(cx.schema.types[t as usize].path));
        }
        fields(cx, t, &mut map)?;
        Ok(t)
    }
}

/// An object of type `t` (complex type or backbone element).
struct ObjectSeed<'a, 's>(&'a Cx<'s>, u32);

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        fields(self.0, self.1, &mut map)
    }
}

/// The keys of one object of type `t`, after `resourceType` for a resource.
fn fields<'de, A: MapAccess<'de>>(cx: &Cx<'_>, t: u32, map: &mut A) -> Result<(), A::Error> {
    let ty = &cx.schema.types[t as usize];
    if !ty.supported {
        return Err(unsure());
    }
    let mut seen = [0u64; MAX_ELEMS / 64];
    let mut companions = [0u64; MAX_ELEMS / 64];
    let mut groups = 0u64;
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        let (name, companion) = match key.strip_prefix('_') {
            Some(name) => (name, true),
            None => (key.as_ref(), false),
        };
        let Some(i) = ty.find(name) else {
            // Unknown, or `resourceType` out of place.
            cx.note(|| Seg::Key(key.clone().into_owned()));
            return Err(unsure());
        };
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let e = &ty.elems[i];
        let g = if e.group > 0 {
            1u64 << (e.group - 1)
        } else {
            0
        };
        // fhirbolt merges `_x` into `x`: a choice's group is taken by one element, and each of
        // `x` and `_x` appears once.
        let (mine, other) = if companion {
            (&mut companions, &seen)
        } else {
            (&mut seen, &companions)
        };
        if mine[word] & bit != 0 || (groups & g != 0 && other[word] & bit == 0) {
            cx.note(|| Seg::Key(key.clone().into_owned()));
            return Err(unsure());
        }
        mine[word] |= bit;
        groups |= g;
        let r = if companion {
            // Only a primitive's companion (not `Resource.id`'s, whose value fhirbolt would drop,
            // nor xhtml's, which has no extensions).
            if !matches!(e.kind, Kind::Prim(_)) || e.name == "id" || e.name == "div" {
                cx.note(|| Seg::Key(key.clone().into_owned()));
                return Err(unsure());
            }
            map.next_value_seed(CompanionSeed(cx, e.array))
        } else {
            map.next_value_seed(ValueSeed(cx, e))
        };
        r.inspect_err(|_| cx.note(|| Seg::Key(key.clone().into_owned())))?;
    }
    for r in &ty.required {
        let present = match *r {
            Req::Elem(i) => seen[i as usize / 64] & (1u64 << (i % 64)) != 0,
            Req::Group(g) => groups & (1u64 << (g - 1)) != 0,
        };
        if !present {
            let name = match *r {
                Req::Elem(i) => ty.elems[i as usize].name.to_string(),
                Req::Group(g) => ty
                    .elems
                    .iter()
                    .find(|e| e.group == g)
                    .map(|e| e.name.to_string())
                    .unwrap_or_default(),
            };
            cx.note(|| Seg::Key(name));
            return Err(unsure());
        }
    }
    Ok(())
}

/// The value of one element: an array where it repeats, else one item.
struct ValueSeed<'a, 's>(&'a Cx<'s>, &'a Elem);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.1.array {
            d.deserialize_seq(self)
        } else {
            ItemSeed(self.0, self.1.kind).deserialize(d)
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0usize;
        loop {
            match seq.next_element_seed(ItemSeed(self.0, self.1.kind)) {
                Ok(Some(())) => n += 1,
                Ok(None) => break,
                Err(e) => {
                    self.0.note(|| Seg::Index(n));
                    return Err(e);
                }
            }
        }
        // fhirbolt panics on an empty array.
        if n == 0 { Err(unsure()) } else { Ok(()) }
    }
}

/// A primitive's `_element` companion: an object with `id` and `extension`, or for a repeating
/// primitive a non-empty array of those and `null`s.
struct CompanionSeed<'a, 's>(&'a Cx<'s>, bool);

impl<'de> DeserializeSeed<'de> for CompanionSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.1 {
            d.deserialize_seq(self)
        } else {
            ObjectSeed(self.0, self.0.schema.companion).deserialize(d)
        }
    }
}

impl<'de> Visitor<'de> for CompanionSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut n = 0usize;
        loop {
            match seq.next_element_seed(MaybeCompanion(self.0)) {
                Ok(Some(())) => n += 1,
                Ok(None) => break,
                Err(e) => {
                    self.0.note(|| Seg::Index(n));
                    return Err(e);
                }
            }
        }
        if n == 0 { Err(unsure()) } else { Ok(()) }
    }
}

/// One item of a companion array: `null` or a companion object.
struct MaybeCompanion<'a, 's>(&'a Cx<'s>);

impl<'de> DeserializeSeed<'de> for MaybeCompanion<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for MaybeCompanion<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("null or an object")
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        ObjectSeed(self.0, self.0.schema.companion).deserialize(d)
    }
}

/// One item of an element's type.
struct ItemSeed<'a, 's>(&'a Cx<'s>, Kind);

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.1 {
            Kind::Complex(t) => ObjectSeed(self.0, t).deserialize(d),
            Kind::Resource => ResourceSeed(self.0).deserialize(d).map(drop),
            Kind::Prim(Prim::Str) | Kind::Plain => d.deserialize_str(StrVisitor),
            Kind::Prim(Prim::Bool) => d.deserialize_bool(BoolVisitor),
            Kind::Prim(p) => {
                let raw = <&RawValue as de::Deserialize>::deserialize(d)?;
                if number_fits(raw.get(), p) {
                    Ok(())
                } else {
                    Err(unsure())
                }
            }
        }
    }
}

/// A JSON number's text as fhirbolt takes it: any number for a decimal, digits that parse as
/// `i32` (`integer`) or `u32` (`positiveInt`, `unsignedInt`).
fn number_fits(text: &str, p: Prim) -> bool {
    let Some(first) = text.bytes().next() else {
        return false;
    };
    match p {
        Prim::Dec => first == b'-' || first.is_ascii_digit(),
        Prim::Int => {
            let digits = text.strip_prefix('-').unwrap_or(text);
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && text.parse::<i32>().is_ok()
        }
        Prim::UInt => text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<u32>().is_ok(),
        Prim::Str | Prim::Bool => false,
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_string<E: de::Error>(self, _: String) -> Result<(), E> {
        Ok(())
    }
}

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------

/// Required elements per type path, as fhirbolt-serde 0.4.0's generated R4 deserializers
/// require them (their `missing_field` calls; a choice as `value[x]`). Generated from that
/// source; `ExampleScenario` aside, every path here is an `ELEMENT_MAP` path.
fn required_elements(path: &str) -> &'static [&'static str] {
    REQUIRED
        .binary_search_by(|(p, _)| p.cmp(&path))
        .map(|i| REQUIRED[i].1)
        .unwrap_or(&[])
}

/// Sorted by path.
#[rustfmt::skip]
const REQUIRED: &[(&str, &[&str])] = &[
    ("Account", &["status"]),
    ("Account.coverage", &["coverage"]),
    ("Account.guarantor", &["party"]),
    ("ActivityDefinition", &["status"]),
    ("ActivityDefinition.dynamicValue", &["path", "expression"]),
    ("ActivityDefinition.participant", &["type"]),
    ("AdverseEvent", &["actuality", "subject"]),
    ("AdverseEvent.suspectEntity", &["instance"]),
    ("AllergyIntolerance", &["patient"]),
    ("Annotation", &["text"]),
    ("Appointment", &["status"]),
    ("Appointment.participant", &["status"]),
    ("AppointmentResponse", &["appointment", "participantStatus"]),
    ("AuditEvent", &["type", "recorded", "source"]),
    ("AuditEvent.agent", &["requestor"]),
    ("AuditEvent.entity.detail", &["type", "value[x]"]),
    ("AuditEvent.source", &["observer"]),
    ("Basic", &["code"]),
    ("Binary", &["contentType"]),
    ("BodyStructure", &["patient"]),
    ("Bundle", &["type"]),
    ("Bundle.entry.request", &["method", "url"]),
    ("Bundle.entry.response", &["status"]),
    ("Bundle.link", &["relation", "url"]),
    ("CapabilityStatement", &["status", "date", "kind", "fhirVersion"]),
    ("CapabilityStatement.document", &["mode", "profile"]),
    ("CapabilityStatement.implementation", &["description"]),
    ("CapabilityStatement.messaging.endpoint", &["protocol", "address"]),
    ("CapabilityStatement.messaging.supportedMessage", &["mode", "definition"]),
    ("CapabilityStatement.rest", &["mode"]),
    ("CapabilityStatement.rest.interaction", &["code"]),
    ("CapabilityStatement.rest.resource", &["type"]),
    ("CapabilityStatement.rest.resource.interaction", &["code"]),
    ("CapabilityStatement.rest.resource.operation", &["name", "definition"]),
    ("CapabilityStatement.rest.resource.searchParam", &["name", "type"]),
    ("CapabilityStatement.software", &["name"]),
    ("CarePlan", &["status", "intent", "subject"]),
    ("CarePlan.activity.detail", &["status"]),
    ("CatalogEntry", &["orderable", "referencedItem"]),
    ("CatalogEntry.relatedEntry", &["relationtype", "item"]),
    ("ChargeItem", &["status", "code", "subject"]),
    ("ChargeItem.performer", &["actor"]),
    ("ChargeItemDefinition", &["url", "status"]),
    ("ChargeItemDefinition.propertyGroup.priceComponent", &["type"]),
    ("Claim", &["status", "type", "use", "patient", "created", "provider", "priority"]),
    ("Claim.accident", &["date"]),
    ("Claim.careTeam", &["sequence", "provider"]),
    ("Claim.diagnosis", &["sequence", "diagnosis[x]"]),
    ("Claim.insurance", &["sequence", "focal", "coverage"]),
    ("Claim.item", &["sequence", "productOrService"]),
    ("Claim.item.detail", &["sequence", "productOrService"]),
    ("Claim.item.detail.subDetail", &["sequence", "productOrService"]),
    ("Claim.payee", &["type"]),
    ("Claim.procedure", &["sequence", "procedure[x]"]),
    ("Claim.supportingInfo", &["sequence", "category"]),
    ("ClaimResponse", &["status", "type", "use", "patient", "created", "insurer", "outcome"]),
    ("ClaimResponse.addItem", &["productOrService"]),
    ("ClaimResponse.addItem.detail", &["productOrService"]),
    ("ClaimResponse.addItem.detail.subDetail", &["productOrService"]),
    ("ClaimResponse.error", &["code"]),
    ("ClaimResponse.insurance", &["sequence", "focal", "coverage"]),
    ("ClaimResponse.item", &["itemSequence"]),
    ("ClaimResponse.item.adjudication", &["category"]),
    ("ClaimResponse.item.detail", &["detailSequence"]),
    ("ClaimResponse.item.detail.subDetail", &["subDetailSequence"]),
    ("ClaimResponse.payment", &["type", "amount"]),
    ("ClaimResponse.processNote", &["text"]),
    ("ClaimResponse.total", &["category", "amount"]),
    ("ClinicalImpression", &["status", "subject"]),
    ("ClinicalImpression.investigation", &["code"]),
    ("CodeSystem", &["status", "content"]),
    ("CodeSystem.concept", &["code"]),
    ("CodeSystem.concept.designation", &["value"]),
    ("CodeSystem.concept.property", &["code", "value[x]"]),
    ("CodeSystem.filter", &["code", "value"]),
    ("CodeSystem.property", &["code", "type"]),
    ("Communication", &["status"]),
    ("Communication.payload", &["content[x]"]),
    ("CommunicationRequest", &["status"]),
    ("CommunicationRequest.payload", &["content[x]"]),
    ("CompartmentDefinition", &["url", "name", "status", "code", "search"]),
    ("CompartmentDefinition.resource", &["code"]),
    ("Composition", &["status", "type", "date", "title"]),
    ("Composition.attester", &["mode"]),
    ("Composition.relatesTo", &["code", "target[x]"]),
    ("ConceptMap", &["status"]),
    ("ConceptMap.group.element.target", &["equivalence"]),
    ("ConceptMap.group.element.target.dependsOn", &["property", "value"]),
    ("ConceptMap.group.unmapped", &["mode"]),
    ("Condition", &["subject"]),
    ("Consent", &["status", "scope"]),
    ("Consent.provision.actor", &["role", "reference"]),
    ("Consent.provision.data", &["meaning", "reference"]),
    ("Consent.verification", &["verified"]),
    ("Contract.contentDefinition", &["type", "publicationStatus"]),
    ("Contract.friendly", &["content[x]"]),
    ("Contract.legal", &["content[x]"]),
    ("Contract.rule", &["content[x]"]),
    ("Contract.signer", &["type", "party"]),
    ("Contract.term", &["offer"]),
    ("Contract.term.action", &["type", "intent", "status"]),
    ("Contract.term.offer.answer", &["value[x]"]),
    ("Contract.term.offer.party", &["role"]),
    ("Contract.term.securityLabel", &["classification"]),
    ("Contributor", &["type", "name"]),
    ("Coverage", &["status", "beneficiary"]),
    ("Coverage.class", &["type", "value"]),
    ("Coverage.costToBeneficiary", &["value[x]"]),
    ("Coverage.costToBeneficiary.exception", &["type"]),
    ("CoverageEligibilityRequest", &["status", "patient", "created", "insurer"]),
    ("CoverageEligibilityRequest.insurance", &["coverage"]),
    ("CoverageEligibilityRequest.supportingInfo", &["sequence", "information"]),
    ("CoverageEligibilityResponse", &["status", "patient", "created", "request", "outcome", "insurer"]),
    ("CoverageEligibilityResponse.error", &["code"]),
    ("CoverageEligibilityResponse.insurance", &["coverage"]),
    ("CoverageEligibilityResponse.insurance.item.benefit", &["type"]),
    ("DataRequirement", &["type"]),
    ("DataRequirement.sort", &["path", "direction"]),
    ("DetectedIssue", &["status"]),
    ("DetectedIssue.mitigation", &["action"]),
    ("Device.deviceName", &["name", "type"]),
    ("Device.property", &["type"]),
    ("Device.specialization", &["systemType"]),
    ("Device.version", &["value"]),
    ("DeviceDefinition.capability", &["type"]),
    ("DeviceDefinition.deviceName", &["name", "type"]),
    ("DeviceDefinition.material", &["substance"]),
    ("DeviceDefinition.property", &["type"]),
    ("DeviceDefinition.specialization", &["systemType"]),
    ("DeviceDefinition.udiDeviceIdentifier", &["deviceIdentifier", "issuer", "jurisdiction"]),
    ("DeviceMetric", &["type", "category"]),
    ("DeviceRequest", &["intent", "code[x]", "subject"]),
    ("DeviceUseStatement", &["status", "subject", "device"]),
    ("DiagnosticReport", &["status", "code"]),
    ("DiagnosticReport.media", &["link"]),
    ("DocumentManifest", &["status"]),
    ("DocumentReference", &["status"]),
    ("DocumentReference.content", &["attachment"]),
    ("DocumentReference.relatesTo", &["code", "target"]),
    ("EffectEvidenceSynthesis", &["status", "population", "exposure", "exposureAlternative", "outcome"]),
    ("EffectEvidenceSynthesis.resultsByExposure", &["riskEvidenceSynthesis"]),
    ("ElementDefinition", &["path"]),
    ("ElementDefinition.base", &["path", "min", "max"]),
    ("ElementDefinition.binding", &["strength"]),
    ("ElementDefinition.constraint", &["key", "severity", "human"]),
    ("ElementDefinition.example", &["label", "value[x]"]),
    ("ElementDefinition.mapping", &["identity", "map"]),
    ("ElementDefinition.slicing", &["rules"]),
    ("ElementDefinition.slicing.discriminator", &["type", "path"]),
    ("ElementDefinition.type", &["code"]),
    ("Encounter", &["status", "class"]),
    ("Encounter.classHistory", &["class", "period"]),
    ("Encounter.diagnosis", &["condition"]),
    ("Encounter.location", &["location"]),
    ("Encounter.statusHistory", &["status", "period"]),
    ("Endpoint", &["status", "connectionType", "address"]),
    ("EpisodeOfCare", &["status", "patient"]),
    ("EpisodeOfCare.diagnosis", &["condition"]),
    ("EpisodeOfCare.statusHistory", &["status", "period"]),
    ("EventDefinition", &["status"]),
    ("Evidence", &["status", "exposureBackground"]),
    ("EvidenceVariable", &["status"]),
    ("EvidenceVariable.characteristic", &["definition[x]"]),
    ("ExampleScenario", &["status"]),
    ("ExampleScenario.actor", &["actorId", "type"]),
    ("ExampleScenario.instance", &["resourceId", "resourceType"]),
    ("ExampleScenario.instance.containedInstance", &["resourceId"]),
    ("ExampleScenario.instance.version", &["versionId", "description"]),
    ("ExampleScenario.process", &["title"]),
    ("ExampleScenario.process.step.alternative", &["title"]),
    ("ExampleScenario.process.step.operation", &["number"]),
    ("ExplanationOfBenefit", &["status", "type", "use", "patient", "created", "insurer", "provider", "outcome"]),
    ("ExplanationOfBenefit.addItem", &["productOrService"]),
    ("ExplanationOfBenefit.addItem.detail", &["productOrService"]),
    ("ExplanationOfBenefit.addItem.detail.subDetail", &["productOrService"]),
    ("ExplanationOfBenefit.benefitBalance", &["category"]),
    ("ExplanationOfBenefit.benefitBalance.financial", &["type"]),
    ("ExplanationOfBenefit.careTeam", &["sequence", "provider"]),
    ("ExplanationOfBenefit.diagnosis", &["sequence", "diagnosis[x]"]),
    ("ExplanationOfBenefit.insurance", &["focal", "coverage"]),
    ("ExplanationOfBenefit.item", &["sequence", "productOrService"]),
    ("ExplanationOfBenefit.item.adjudication", &["category"]),
    ("ExplanationOfBenefit.item.detail", &["sequence", "productOrService"]),
    ("ExplanationOfBenefit.item.detail.subDetail", &["sequence", "productOrService"]),
    ("ExplanationOfBenefit.procedure", &["sequence", "procedure[x]"]),
    ("ExplanationOfBenefit.supportingInfo", &["sequence", "category"]),
    ("ExplanationOfBenefit.total", &["category", "amount"]),
    ("Expression", &["language"]),
    ("Extension", &["url"]),
    ("FamilyMemberHistory", &["status", "patient", "relationship"]),
    ("FamilyMemberHistory.condition", &["code"]),
    ("Flag", &["status", "code", "subject"]),
    ("Goal", &["lifecycleStatus", "description", "subject"]),
    ("GraphDefinition", &["name", "status", "start"]),
    ("GraphDefinition.link.target", &["type"]),
    ("GraphDefinition.link.target.compartment", &["use", "code", "rule"]),
    ("Group", &["type", "actual"]),
    ("Group.characteristic", &["code", "value[x]", "exclude"]),
    ("Group.member", &["entity"]),
    ("GuidanceResponse", &["module[x]", "status"]),
    ("HealthcareService.notAvailable", &["description"]),
    ("ImagingStudy", &["status", "subject"]),
    ("ImagingStudy.series", &["uid", "modality"]),
    ("ImagingStudy.series.instance", &["uid", "sopClass"]),
    ("ImagingStudy.series.performer", &["actor"]),
    ("Immunization", &["status", "vaccineCode", "patient", "occurrence[x]"]),
    ("Immunization.performer", &["actor"]),
    ("Immunization.protocolApplied", &["doseNumber[x]"]),
    ("ImmunizationEvaluation", &["status", "patient", "targetDisease", "immunizationEvent", "doseStatus"]),
    ("ImmunizationRecommendation", &["patient", "date"]),
    ("ImmunizationRecommendation.recommendation", &["forecastStatus"]),
    ("ImmunizationRecommendation.recommendation.dateCriterion", &["code", "value"]),
    ("ImplementationGuide", &["url", "name", "status", "packageId"]),
    ("ImplementationGuide.definition.grouping", &["name"]),
    ("ImplementationGuide.definition.page", &["name[x]", "title", "generation"]),
    ("ImplementationGuide.definition.parameter", &["code", "value"]),
    ("ImplementationGuide.definition.resource", &["reference"]),
    ("ImplementationGuide.definition.template", &["code", "source"]),
    ("ImplementationGuide.dependsOn", &["uri"]),
    ("ImplementationGuide.global", &["type", "profile"]),
    ("ImplementationGuide.manifest.page", &["name"]),
    ("ImplementationGuide.manifest.resource", &["reference"]),
    ("InsurancePlan.coverage", &["type"]),
    ("InsurancePlan.coverage.benefit", &["type"]),
    ("InsurancePlan.plan.specificCost", &["category"]),
    ("InsurancePlan.plan.specificCost.benefit", &["type"]),
    ("InsurancePlan.plan.specificCost.benefit.cost", &["type"]),
    ("Invoice", &["status"]),
    ("Invoice.lineItem", &["chargeItem[x]"]),
    ("Invoice.lineItem.priceComponent", &["type"]),
    ("Invoice.participant", &["actor"]),
    ("Library", &["status", "type"]),
    ("Linkage.item", &["type", "resource"]),
    ("List", &["status", "mode"]),
    ("List.entry", &["item"]),
    ("Location.position", &["longitude", "latitude"]),
    ("MarketingStatus", &["country", "status", "dateRange"]),
    ("Measure", &["status"]),
    ("Measure.group.population", &["criteria"]),
    ("Measure.group.stratifier.component", &["criteria"]),
    ("Measure.supplementalData", &["criteria"]),
    ("MeasureReport", &["status", "type", "measure", "period"]),
    ("MeasureReport.group.stratifier.stratum.component", &["code", "value"]),
    ("Media", &["status", "content"]),
    ("Medication.ingredient", &["item[x]"]),
    ("MedicationAdministration", &["status", "medication[x]", "subject", "effective[x]"]),
    ("MedicationAdministration.performer", &["actor"]),
    ("MedicationDispense", &["status", "medication[x]"]),
    ("MedicationDispense.performer", &["actor"]),
    ("MedicationDispense.substitution", &["wasSubstituted"]),
    ("MedicationKnowledge.administrationGuidelines.dosage", &["type"]),
    ("MedicationKnowledge.administrationGuidelines.patientCharacteristics", &["characteristic[x]"]),
    ("MedicationKnowledge.cost", &["type", "cost"]),
    ("MedicationKnowledge.ingredient", &["item[x]"]),
    ("MedicationKnowledge.medicineClassification", &["type"]),
    ("MedicationKnowledge.regulatory", &["regulatoryAuthority"]),
    ("MedicationKnowledge.regulatory.maxDispense", &["quantity"]),
    ("MedicationKnowledge.regulatory.schedule", &["schedule"]),
    ("MedicationKnowledge.regulatory.substitution", &["type", "allowed"]),
    ("MedicationKnowledge.relatedMedicationKnowledge", &["type"]),
    ("MedicationRequest", &["status", "intent", "medication[x]", "subject"]),
    ("MedicationRequest.substitution", &["allowed[x]"]),
    ("MedicationStatement", &["status", "medication[x]", "subject"]),
    ("MedicinalProduct.name", &["productName"]),
    ("MedicinalProduct.name.countryLanguage", &["country", "language"]),
    ("MedicinalProduct.name.namePart", &["part", "type"]),
    ("MedicinalProductAuthorization.procedure", &["type"]),
    ("MedicinalProductContraindication.otherTherapy", &["therapyRelationshipType", "medication[x]"]),
    ("MedicinalProductIndication.otherTherapy", &["therapyRelationshipType", "medication[x]"]),
    ("MedicinalProductIngredient", &["role"]),
    ("MedicinalProductIngredient.specifiedSubstance", &["code", "group"]),
    ("MedicinalProductIngredient.specifiedSubstance.strength", &["presentation"]),
    ("MedicinalProductIngredient.specifiedSubstance.strength.referenceStrength", &["strength"]),
    ("MedicinalProductIngredient.substance", &["code"]),
    ("MedicinalProductInteraction.interactant", &["item[x]"]),
    ("MedicinalProductManufactured", &["manufacturedDoseForm", "quantity"]),
    ("MedicinalProductPackaged.batchIdentifier", &["outerPackaging"]),
    ("MedicinalProductPackaged.packageItem", &["type", "quantity"]),
    ("MedicinalProductPharmaceutical", &["administrableDoseForm"]),
    ("MedicinalProductPharmaceutical.characteristics", &["code"]),
    ("MedicinalProductPharmaceutical.routeOfAdministration", &["code"]),
    ("MedicinalProductPharmaceutical.routeOfAdministration.targetSpecies", &["code"]),
    ("MessageDefinition", &["status", "date", "event[x]"]),
    ("MessageDefinition.allowedResponse", &["message"]),
    ("MessageDefinition.focus", &["code", "min"]),
    ("MessageHeader", &["event[x]", "source"]),
    ("MessageHeader.destination", &["endpoint"]),
    ("MessageHeader.response", &["identifier", "code"]),
    ("MessageHeader.source", &["endpoint"]),
    ("MolecularSequence", &["coordinateSystem"]),
    ("MolecularSequence.quality", &["type"]),
    ("MolecularSequence.repository", &["type"]),
    ("NamingSystem", &["name", "status", "kind", "date"]),
    ("NamingSystem.uniqueId", &["type", "value"]),
    ("Narrative", &["status", "div"]),
    ("NutritionOrder", &["status", "intent", "patient", "dateTime"]),
    ("Observation", &["status", "code"]),
    ("Observation.component", &["code"]),
    ("ObservationDefinition", &["code"]),
    ("OperationDefinition", &["name", "status", "kind", "code", "system", "type", "instance"]),
    ("OperationDefinition.parameter", &["name", "use", "min", "max"]),
    ("OperationDefinition.parameter.binding", &["strength", "valueSet"]),
    ("OperationDefinition.parameter.referencedFrom", &["source"]),
    ("OperationOutcome.issue", &["severity", "code"]),
    ("ParameterDefinition", &["use", "type"]),
    ("Parameters.parameter", &["name"]),
    ("Patient.communication", &["language"]),
    ("Patient.link", &["other", "type"]),
    ("PaymentNotice", &["status", "created", "payment", "recipient", "amount"]),
    ("PaymentReconciliation", &["status", "created", "paymentDate", "paymentAmount"]),
    ("PaymentReconciliation.detail", &["type"]),
    ("Person.link", &["target"]),
    ("PlanDefinition", &["status"]),
    ("PlanDefinition.action.condition", &["kind"]),
    ("PlanDefinition.action.participant", &["type"]),
    ("PlanDefinition.action.relatedAction", &["actionId", "relationship"]),
    ("PlanDefinition.goal", &["description"]),
    ("Practitioner.qualification", &["code"]),
    ("PractitionerRole.notAvailable", &["description"]),
    ("Procedure", &["status", "subject"]),
    ("Procedure.focalDevice", &["manipulated"]),
    ("Procedure.performer", &["actor"]),
    ("ProductShelfLife", &["type", "period"]),
    ("Provenance", &["recorded"]),
    ("Provenance.agent", &["who"]),
    ("Provenance.entity", &["role", "what"]),
    ("Questionnaire", &["status"]),
    ("Questionnaire.item", &["linkId", "type"]),
    ("Questionnaire.item.answerOption", &["value[x]"]),
    ("Questionnaire.item.enableWhen", &["question", "operator", "answer[x]"]),
    ("Questionnaire.item.initial", &["value[x]"]),
    ("QuestionnaireResponse", &["status"]),
    ("QuestionnaireResponse.item", &["linkId"]),
    ("RelatedArtifact", &["type"]),
    ("RelatedPerson", &["patient"]),
    ("RelatedPerson.communication", &["language"]),
    ("RequestGroup", &["status", "intent"]),
    ("RequestGroup.action.condition", &["kind"]),
    ("RequestGroup.action.relatedAction", &["actionId", "relationship"]),
    ("ResearchDefinition", &["status", "population"]),
    ("ResearchElementDefinition", &["status", "type"]),
    ("ResearchElementDefinition.characteristic", &["definition[x]"]),
    ("ResearchStudy", &["status"]),
    ("ResearchStudy.arm", &["name"]),
    ("ResearchSubject", &["status", "study", "individual"]),
    ("RiskAssessment", &["status", "subject"]),
    ("RiskEvidenceSynthesis", &["status", "population", "outcome"]),
    ("SampledData", &["origin", "period", "dimensions"]),
    ("SearchParameter", &["url", "name", "status", "description", "code", "type"]),
    ("SearchParameter.component", &["definition", "expression"]),
    ("ServiceRequest", &["status", "intent", "subject"]),
    ("Signature", &["when", "who"]),
    ("Slot", &["schedule", "status", "start", "end"]),
    ("SpecimenDefinition.typeTested", &["preference"]),
    ("SpecimenDefinition.typeTested.container.additive", &["additive[x]"]),
    ("StructureDefinition", &["url", "name", "status", "kind", "abstract", "type"]),
    ("StructureDefinition.context", &["type", "expression"]),
    ("StructureDefinition.mapping", &["identity"]),
    ("StructureMap", &["url", "name", "status"]),
    ("StructureMap.group", &["name", "typeMode"]),
    ("StructureMap.group.input", &["name", "mode"]),
    ("StructureMap.group.rule", &["name"]),
    ("StructureMap.group.rule.dependent", &["name"]),
    ("StructureMap.group.rule.source", &["context"]),
    ("StructureMap.group.rule.target.parameter", &["value[x]"]),
    ("StructureMap.structure", &["url", "mode"]),
    ("Subscription", &["status", "reason", "criteria", "channel"]),
    ("Subscription.channel", &["type"]),
    ("Substance", &["code"]),
    ("Substance.ingredient", &["substance[x]"]),
    ("SubstanceSpecification.name", &["name"]),
    ("SupplyRequest", &["item[x]", "quantity"]),
    ("Task", &["status", "intent"]),
    ("Task.input", &["type", "value[x]"]),
    ("Task.output", &["type", "value[x]"]),
    ("TerminologyCapabilities", &["status", "date", "kind"]),
    ("TerminologyCapabilities.codeSystem.version.filter", &["code"]),
    ("TerminologyCapabilities.expansion.parameter", &["name"]),
    ("TerminologyCapabilities.implementation", &["description"]),
    ("TerminologyCapabilities.software", &["name"]),
    ("TerminologyCapabilities.translation", &["needsMap"]),
    ("TerminologyCapabilities.validateCode", &["translations"]),
    ("TestReport", &["status", "testScript", "result"]),
    ("TestReport.participant", &["type", "uri"]),
    ("TestReport.setup.action.assert", &["result"]),
    ("TestReport.setup.action.operation", &["result"]),
    ("TestReport.teardown.action", &["operation"]),
    ("TestScript", &["url", "name", "status"]),
    ("TestScript.destination", &["index", "profile"]),
    ("TestScript.fixture", &["autocreate", "autodelete"]),
    ("TestScript.metadata.capability", &["required", "validated", "capabilities"]),
    ("TestScript.metadata.link", &["url"]),
    ("TestScript.origin", &["index", "profile"]),
    ("TestScript.setup.action.assert", &["warningOnly"]),
    ("TestScript.setup.action.operation", &["encodeRequestUrl"]),
    ("TestScript.setup.action.operation.requestHeader", &["field", "value"]),
    ("TestScript.teardown.action", &["operation"]),
    ("TestScript.variable", &["name"]),
    ("TriggerDefinition", &["type"]),
    ("UsageContext", &["code", "value[x]"]),
    ("ValueSet", &["status"]),
    ("ValueSet.compose.include.concept", &["code"]),
    ("ValueSet.compose.include.concept.designation", &["value"]),
    ("ValueSet.compose.include.filter", &["property", "op", "value"]),
    ("ValueSet.expansion", &["timestamp"]),
    ("ValueSet.expansion.parameter", &["name"]),
    ("VerificationResult", &["status"]),
    ("VerificationResult.validator", &["organization"]),
    ("VisionPrescription", &["status", "created", "patient", "dateWritten", "prescriber"]),
    ("VisionPrescription.lensSpecification", &["product", "eye"]),
    ("VisionPrescription.lensSpecification.prism", &["amount", "base"]),
];
