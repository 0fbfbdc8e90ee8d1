"""US consumer price index for the price-level factor (pure data).

Source: U.S. Bureau of Labor Statistics, CPI for All Urban Consumers (CPI-U), U.S. city average,
all items, not seasonally adjusted, 1982-84 = 100, annual averages (series CUUR0000SA0,
https://www.bls.gov/cpi/). Update the table when BLS publishes a new annual average (January);
for a later valuation year the last published year is used and the factor says so.
"""

from __future__ import annotations

from dataclasses import dataclass

CPI_U_ANNUAL_AVERAGE: dict[int, float] = {
    2005: 195.3,
    2006: 201.6,
    2007: 207.342,
    2008: 215.303,
    2009: 214.537,
    2010: 218.056,
    2011: 224.939,
    2012: 229.594,
    2013: 232.957,
    2014: 236.736,
    2015: 237.017,
    2016: 240.007,
    2017: 245.120,
    2018: 251.107,
    2019: 255.657,
    2020: 258.811,
    2021: 270.970,
    2022: 292.655,
    2023: 304.702,
    2024: 313.689,
}
CPI_SOURCE = "BLS CPI-U, U.S. city average, all items, annual average (series CUUR0000SA0)"
FIRST_YEAR = min(CPI_U_ANNUAL_AVERAGE)
LAST_YEAR = max(CPI_U_ANNUAL_AVERAGE)


@dataclass(frozen=True)
class PriceLevel:
    ratio: float
    from_year: int
    to_year: int  # the table year actually used
    requested_year: int

    @property
    def stale(self) -> bool:
        """True when the valuation year is past the last published annual average."""
        return self.requested_year > self.to_year

    def describe(self) -> str:
        text = (
            f"price level {self.from_year} → {self.to_year}: CPI-U annual average "
            f"{CPI_U_ANNUAL_AVERAGE[self.to_year]:g} / {CPI_U_ANNUAL_AVERAGE[self.from_year]:g}"
        )
        if self.stale:
            text += (
                f" (valued in {self.requested_year}; {self.to_year} is the last published "
                "annual average in the kiosk's table)"
            )
        return text


def price_level(from_year: int, to_year: int) -> PriceLevel:
    """CPI-U ratio from ``from_year`` to ``to_year`` (clamped to the table's years)."""
    if from_year not in CPI_U_ANNUAL_AVERAGE:
        raise ValueError(f"no CPI-U annual average for {from_year}")
    used = min(max(to_year, FIRST_YEAR), LAST_YEAR)
    ratio = CPI_U_ANNUAL_AVERAGE[used] / CPI_U_ANNUAL_AVERAGE[from_year]
    return PriceLevel(ratio=ratio, from_year=from_year, to_year=used, requested_year=to_year)
