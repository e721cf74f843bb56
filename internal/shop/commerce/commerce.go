// Package commerce is the vocabulary the shop's services share — money in minor
// units and card numbers — so that catalog, orders and payments render and check
// them alike, and verify customers the same way. It is not a service: it imports
// none, and any may import it.
package commerce

import (
	"strconv"
)

// Test cards: the simulated payment provider answers them the same way every time.
const (
	CardApproved          = "4242424242424242" // always approved
	CardDeclined          = "4000000000000002" // always declined: "card declined"
	CardInsufficientFunds = "4000000000009995" // always declined: "insufficient funds"
	CardProviderFails     = "4000000000000119" // the provider always fails
)

// ValidCardNumber reports whether s is 12 to 19 digits with a valid Luhn check digit.
func ValidCardNumber(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	sum := 0
	for i := range len(s) {
		c := s[len(s)-1-i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// minorDigits are the ISO 4217 minor-unit exponents that are not 2.
var minorDigits = map[string]int{"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0, "BHD": 3, "KWD": 3, "JOD": 3, "OMR": 3, "TND": 3}

// Decimal renders minor units of currency as a decimal string in the major unit:
// 12900 EUR is "129.00", 1500 JPY is "1500".
func Decimal(minor int64, currency string) string {
	digits, ok := minorDigits[currency]
	if !ok {
		digits = 2
	}
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if digits == 0 {
		return sign + s
	}
	for len(s) <= digits {
		s = "0" + s
	}
	return sign + s[:len(s)-digits] + "." + s[len(s)-digits:]
}

// ValidCurrency reports whether c looks like an ISO 4217 code (three capitals).
func ValidCurrency(c string) bool {
	return len(c) == 3 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' && c[2] >= 'A' && c[2] <= 'Z'
}
