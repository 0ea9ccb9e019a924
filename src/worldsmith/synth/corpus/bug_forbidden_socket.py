"""Unscramble a common English word (equality oracle)."""

import socket

from worldsmith import Environment

FALLBACK_WORDS = ["garden", "planet", "silver", "window", "orange", "bridge", "candle", "forest",
                  "market", "pencil", "rocket", "summer", "tunnel", "violin", "wizard", "yellow"]


def scale(difficulty, low, high):
    return low + int(round(difficulty * (high - low)))


def word_list():
    try:
        with socket.create_connection(("www.mit.edu", 80), timeout=2) as conn:
            conn.sendall(b"GET /~ecprice/wordlist.10000 HTTP/1.0\r\nHost: www.mit.edu\r\n\r\n")
            body = b""
            while chunk := conn.recv(65536):
                body += chunk
        words = body.split(b"\r\n\r\n", 1)[1].decode().split()
        return [w for w in words if w.isalpha() and len(w) >= 4] or FALLBACK_WORDS
    except OSError:
        return FALLBACK_WORDS


class Unscramble(Environment):
    name = "unscramble"
    description = "Unscramble the letters of a common English word."
    answer_format = "the word, lowercase"

    def generate(self, rng, difficulty):
        words = sorted(w for w in word_list() if len(w) <= scale(difficulty, 6, 12))
        word = rng.choice(words)
        letters = list(word)
        while "".join(letters) == word:
            rng.shuffle(letters)
        return {"scrambled": "".join(letters), "word": word}

    def solve(self, instance):
        return instance["word"]

    def render(self, instance):
        return (
            f"Rearrange the letters '{instance['scrambled']}' into a common English word.\n"
            f"Give {self.answer_format} as <answer>...</answer>."
        )

    def score(self, instance, answer):
        return 1.0 if answer.strip().lower() == instance["word"] else 0.0
