"""Drive the pages as a browser would: follow links, fill forms, send their CSRF tokens.

It reads the HTML the shop serves (BeautifulSoup) and submits exactly the fields a browser
would submit, so a form whose markup is wrong fails the test.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlparse

from bs4 import BeautifulSoup


class Page:
    def __init__(self, response, url: str):
        self.response = response
        self.url = url
        self.status = response.status_code
        self.html = response.get_data(as_text=True)
        self.soup = BeautifulSoup(self.html, "html.parser")

    @property
    def text(self) -> str:
        return " ".join(self.soup.get_text(" ").split())

    def messages(self) -> list[str]:
        return [" ".join(p.get_text(" ").split()) for p in self.soup.select(".msg")]


class Browser:
    def __init__(self, client):
        self.client = client
        self.page: Page | None = None

    def get(self, url: str, expect: int = 200) -> Page:
        response = self.client.get(url, follow_redirects=True)
        self.page = Page(response, response.request.path)
        assert response.status_code == expect, (url, response.status_code, self.page.text[:500])
        return self.page

    def follow(self, text: str, expect: int = 200) -> Page:
        assert self.page is not None
        for a in self.page.soup.find_all("a"):
            if text in " ".join(a.get_text(" ").split()):
                return self.get(urljoin(self.page.url, a["href"]), expect)
        raise AssertionError(f"no link with text {text!r} on {self.page.url}")

    def option_value(self, label_text: str) -> str:
        """The value of the radio button or checkbox whose label contains label_text."""
        assert self.page is not None
        for label in self.page.soup.find_all("label"):
            if label_text in label.get_text(" ") and label.get("for"):
                control = self.page.soup.find(id=label["for"])
                if control is not None and control.get("type") in ("radio", "checkbox"):
                    return control["value"]
        raise AssertionError(f"no option labelled {label_text!r} on {self.page.url}")

    def form(self, selector: str = "main form", index: int = 0):
        assert self.page is not None
        forms = self.page.soup.select(selector)
        assert forms, f"no form matching {selector!r} on {self.page.url}"
        return forms[index]

    def submit(
        self,
        form,
        fields: dict[str, str] | None = None,
        button: str | None = None,
        expect: int | None = 200,
    ) -> Page:
        """Submit like a browser: current values, overridden by `fields`, plus the button used."""
        data: dict[str, str] = {}
        for element in form.find_all(["input", "select", "textarea"]):
            name = element.get("name")
            if not name or element.has_attr("disabled"):
                continue
            kind = element.get("type", "text") if element.name == "input" else element.name
            if kind in ("submit", "button", "image"):
                continue
            if kind in ("radio", "checkbox"):
                if element.has_attr("checked"):
                    data[name] = element.get("value", "on")
            elif kind == "select":
                chosen = element.find("option", selected=True) or element.find("option")
                if chosen is not None:
                    data[name] = chosen.get("value", chosen.get_text())
            elif kind == "textarea":
                # As browsers do (HTML spec): one newline right after <textarea> is not content.
                text = element.get_text()
                data[name] = text[2:] if text.startswith("\r\n") else text.removeprefix("\n")
            else:
                data[name] = element.get("value", "")
        for name, value in (fields or {}).items():
            assert form.find(attrs={"name": name}) is not None, f"form has no field {name!r}"
            data[name] = value
        buttons = form.find_all(["input", "button"], attrs={"type": "submit"})
        if button is not None:
            chosen = next(
                (b for b in buttons if button in (b.get("value") or b.get_text(" ").strip())), None
            )
            assert chosen is not None, f"no button {button!r}"
            if chosen.get("name"):
                data[chosen["name"]] = chosen.get("value", "")
        action = urljoin(self.page.url, form.get("action") or self.page.url)
        method = (form.get("method") or "get").lower()
        if method == "post":
            response = self.client.post(urlparse(action).path, data=data, follow_redirects=True)
        else:
            response = self.client.get(
                urlparse(action).path, query_string=data, follow_redirects=True
            )
        self.page = Page(response, response.request.path)
        if expect is not None:
            assert response.status_code == expect, (
                action,
                response.status_code,
                self.page.text[:800],
            )
        return self.page
