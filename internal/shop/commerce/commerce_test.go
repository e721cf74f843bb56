package commerce_test

import (
	"testing"

	"github.com/switchyard/switchyard/internal/shop/commerce"
)

func TestCardNumbersAreLuhnChecked(t *testing.T) {
	t.Parallel()
	for card, want := range map[string]bool{
		commerce.CardApproved: true, commerce.CardDeclined: true, commerce.CardInsufficientFunds: true,
		commerce.CardProviderFails: true, "4242424242424241": false, "42424242424a4242": false,
		"79927398713": false, "000000000000": true, "12345678901234567890": false,
	} {
		if got := commerce.ValidCardNumber(card); got != want {
			t.Errorf("ValidCardNumber(%s) = %v, want %v", card, got, want)
		}
	}
}

func TestMoneyRendersInTheCurrencysDigits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		minor    int64
		currency string
		want     string
	}{{12900, "EUR", "129.00"}, {5, "EUR", "0.05"}, {0, "USD", "0.00"}, {1500, "JPY", "1500"}, {12345, "KWD", "12.345"}, {-250, "EUR", "-2.50"}} {
		if got := commerce.Decimal(c.minor, c.currency); got != c.want {
			t.Errorf("Decimal(%d, %s) = %s, want %s", c.minor, c.currency, got, c.want)
		}
	}
	for c, want := range map[string]bool{"EUR": true, "eur": false, "EU": false, "EURO": false} {
		if commerce.ValidCurrency(c) != want {
			t.Errorf("ValidCurrency(%q) = %v", c, !want)
		}
	}
}
