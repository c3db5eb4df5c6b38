//! Authorization: who may do what. Pure decisions over a user and a request's attributes.
