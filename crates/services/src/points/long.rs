//! `Long`: the GraphQL type of sums of points that can pass a 32-bit `Int` (a concert's
//! revenue: 50,000 seats at 150,000 points is 7.5·10⁹). Balances and single amounts stay
//! `Int`, bounded by `POINTS_MAX_BALANCE`; only sums over many accounts are `Long`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// A 64-bit signed integer, sent as a JSON number (exact in JavaScript up to 2^53 − 1,
/// about 9·10¹⁵ points).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Long(pub i64);

/// A 64-bit signed integer, sent as a JSON number: sums of points (revenues) that can
/// pass the 32-bit `Int`. Exact in JavaScript up to 9007199254740991.
#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n
                .as_i64()
                .map(Long)
                .ok_or_else(|| InputValueError::expected_type(value)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums past 32 bits go out and come back exactly; anything but an integer is refused.
    #[test]
    fn long_round_trips_64_bit_integers_and_refuses_the_rest() {
        let revenue = Long(7_500_000_000);
        assert_eq!(Long::parse(revenue.to_value()).ok(), Some(revenue));
        assert_eq!(Long::parse(Value::from(-3)).ok(), Some(Long(-3)));
        assert!(Long::parse(Value::from(1.5)).is_err());
        assert!(Long::parse(Value::from("7500000000")).is_err());
        assert!(Long::parse(Value::Null).is_err());
    }
}
