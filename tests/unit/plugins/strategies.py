"""Hypothesis strategies shared by the plugin tests."""

from hypothesis import strategies as st

# What Open WebUI (or any client) may post as a chat body to a Mixture of Agents host: missing or
# wrong-typed keys and malformed messages included.
bodies = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "model": st.sampled_from(["mixture_of_agents", "mixture_of_agents.x", "", 5]),
            "messages": st.one_of(
                st.none(),
                st.text(max_size=3),
                st.lists(
                    st.one_of(
                        st.fixed_dictionaries(
                            {"role": st.sampled_from(["user", "system", "assistant"]), "content": st.text(max_size=8)}
                        ),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                    ),
                    max_size=4,
                ),
            ),
            "stream": st.booleans(),
            "temperature": st.one_of(st.none(), st.floats(0, 2)),
        },
    ),
)
