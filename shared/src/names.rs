//! `named_enum!`: an enum whose variants have names (in logs, JSON, config, CLI output) written
//! once, in one `Variant => "name"` list, instead of once in serde's attributes and again in a
//! hand-written `as_str` that could drift apart from it.
//!
//! The macro emits the enum as written plus:
//! * `#[derive(serde::Serialize)]` and `#[serde(rename = "name")]` on each variant (so a
//!   `#[derive(Deserialize)]` added by the caller reads the same names, and container attributes
//!   such as `#[serde(tag = "decision")]` still apply);
//! * `as_str(&self) -> &'static str` and `Display` (the same name);
//! * for enums without fields, `NAMES` (declaration order) and `from_name`, for the enums that
//!   are parsed (`OrderPolicy`'s `FromStr`).

macro_rules! named_enum {
    (@emit
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident $({ $($fields:tt)* })? => $text:literal ),+
        }
    ) => {
        // Serialize first: serde's helper attributes must come after the derive that brings them.
        #[derive(::serde::Serialize)]
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant $({ $($fields)* })? ),+
        }

        impl $name {
            /// The name it is logged, serialised and displayed by.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( Self::$variant { .. } => $text, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    // Unit variants only: also the parsing side.
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $crate::names::named_enum!(@emit $(#[$meta])* $vis enum $name { $( $(#[$vmeta])* $variant => $text ),+ });

        impl $name {
            /// Every variant's name, in declaration order.
            pub const NAMES: [&'static str; <[&str]>::len(&[$($text),+])] = [$($text),+];

            /// The variant with this exact name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some(Self::$variant), )+
                    _ => None,
                }
            }
        }
    };
    // Variants may have named fields: names only, no parsing.
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident $({ $($fields:tt)* })? => $text:literal ),+ $(,)?
        }
    ) => {
        $crate::names::named_enum!(@emit $(#[$meta])* $vis enum $name { $( $(#[$vmeta])* $variant $({ $($fields)* })? => $text ),+ });
    };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    named_enum! {
        /// A parsed one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        enum Colour {
            Red => "red",
            /// A documented variant.
            DarkBlue => "dark-blue",
            #[serde(other)]
            Unknown => "UNKNOWN",
        }
    }

    named_enum! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[serde(tag = "kind")]
        enum Shape {
            Dot => "dot",
            Square { side: u32 } => "square_shape",
        }
    }

    #[test]
    fn one_name_everywhere() {
        for (colour, name) in [(Colour::Red, "red"), (Colour::DarkBlue, "dark-blue"), (Colour::Unknown, "UNKNOWN")] {
            assert_eq!(colour.as_str(), name);
            assert_eq!(colour.to_string(), name);
            assert_eq!(serde_json::to_value(colour).ok(), Some(serde_json::json!(name)));
            assert_eq!(Colour::from_name(name), Some(colour));
        }
        assert_eq!(Colour::NAMES, ["red", "dark-blue", "UNKNOWN"]);
        assert_eq!(Colour::from_name("Red"), None);
        let read: Result<Vec<Colour>, _> = serde_json::from_str(r#"["dark-blue", "green"]"#);
        assert_eq!(read.ok(), Some(vec![Colour::DarkBlue, Colour::Unknown]));
    }

    #[test]
    fn variants_with_fields_keep_serde_container_attributes() {
        let square = Shape::Square { side: 2 };
        assert_eq!(square.as_str(), "square_shape");
        assert_eq!(serde_json::to_value(&square).ok(), Some(serde_json::json!({"kind": "square_shape", "side": 2})));
        assert_eq!(serde_json::to_value(Shape::Dot).ok(), Some(serde_json::json!({"kind": "dot"})));
    }
}
